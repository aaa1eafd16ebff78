"""A component's new version reaching every model built on it (one check each, now), and the
inventory of components and their dependents that ``retrainctl audit`` shows.

Each dependent's check validates the component's newest version on its own window (see
``controller.reactors.components``); this runs those checks at once instead of at each model's
next scheduled check. A check carries the request key ``component:<name>:<version>:<model>``, so
running it again for the same version does nothing new.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controller.config import ComponentUse
from controller.errors import GiveUp, UserError
from controller.reactors.check import CheckOutcome, run_check
from controller.reactors.components import COMPONENT_TAG, dependents
from controller.reactors.context import Context


def validate_component(ctx: Context, component: str, now: datetime | None = None) -> list[CheckOutcome]:
    """Check every model that uses ``component``; raises :class:`UserError` when none does."""
    users = dependents(ctx.models, component)
    if not users:
        raise UserError(f"no watched model uses component {component!r} (add it under 'uses:' in a model file)")
    # the newest version named by each dependent's alias (they may follow different aliases)
    outcomes = []
    for cfg in users:
        use = next(u for u in cfg.uses if u.component == component)
        newest = ctx.registry.find_alias(component, use.alias)
        key = f"component:{component}:{newest.version if newest else use.version}:{cfg.name}"
        outcomes.append(run_check(ctx, cfg.name, request_key=key, now=now))
    return outcomes


def component_inventory(ctx: Context) -> list[dict[str, Any]]:
    """Every component a watched model uses: whether the registry marks it, its newest version, and
    each dependent's version in use and what its latest check said (upstream cause, verdict)."""
    by_component: dict[str, list[tuple[str, ComponentUse]]] = {}
    for name, cfg in sorted(ctx.models.items()):
        for use in cfg.uses:
            by_component.setdefault(use.component, []).append((name, use))
    out = []
    for component, users in sorted(by_component.items()):
        try:
            marked: bool | None = ctx.registry.model_tags(component).get(COMPONENT_TAG) == "true"
            newest = ctx.registry.find_alias(component, users[0][1].alias)
        except GiveUp:
            marked, newest = None, None
        rows = []
        for name, use in users:
            last = ctx.store.checks(name, limit=1)
            signals = (last[0].signals or {}) if last else {}
            records = signals.get("components", [])
            record: dict[str, Any] = next((r for r in records if r.get("component") == component), {})
            validation = record.get("validation") or {}
            rows.append({
                "model": name,
                "in_use": use.version,
                "embedding": use.embedding,
                "checked_at": last[0].finished_at.isoformat() if last and last[0].finished_at else None,
                "upstream": record.get("upstream"),
                "verdict": validation.get("verdict"),
                "summary": validation.get("summary"),
            })  # fmt: skip
        out.append({
            "component": component,
            "marked": marked,
            "newest": newest.version if newest else None,
            "dependents": rows,
        })  # fmt: skip
    return out
