"""``retrainctl check``, ``status``, ``history``, ``audit``, ``baseline``, ``approve``, ``veto`` and
``validate-component``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from controller.cli.common import (
    ConfigOpt,
    JsonOpt,
    console,
    context,
    known_model,
    money,
    num,
    parse_time,
    step,
    store_context,
)
from controller.errors import GiveUp, UserError


def check(
    model: Annotated[str, typer.Argument(help="The model's name (its file in configs/models/).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    act: Annotated[bool, typer.Option(help="Run a triggered retrain and deliver the outbox in-process.")] = True,
    now: Annotated[str | None, typer.Option(help="Check as of this ISO time (default: now).")] = None,
) -> None:
    """Run one check of MODEL now and print its decision."""
    from controller.reactors.check import run_check
    from controller.reactors.outbox import deliver_outbox
    from controller.reactors.retrain import run_retrain

    ctx = context(config)
    when = parse_time(now) if now else None
    outcome = run_check(ctx, model, now=when)
    retrain = None
    if act and outcome.retrain_id is not None:
        retrain = run_retrain(ctx, outcome.retrain_id)
    if act:
        deliver_outbox(ctx)
    d = outcome.decision
    if as_json:
        from controller.adapters.store.records import to_jsonable

        out = {
            "model": model,
            "check_id": outcome.check_id,
            "version": outcome.version,
            "decision": None if d is None else d.action.value,
            "reasons": [] if d is None else d.reason_codes,
            "summary": None if d is None else d.summary,
            "signal_source": None if d is None else d.signal_source,
            "numbers": None if d is None else to_jsonable(d.numbers),
            "retrain": None if retrain is None else to_jsonable(retrain),
        }
        print(json.dumps(out, indent=2))
        return
    c = console()
    if d is None:
        c.print(f"{model}: check {outcome.check_id} was already done")
        return
    c.print(f"[bold]{model}[/] v{outcome.version}: [bold]{d.action.value}[/] ({', '.join(d.reason_codes)})")
    c.print(d.summary)
    n = d.numbers
    c.print(
        f"drop {n.drop_points:.2f} pts ({d.signal_source}) | loss/day {money(n.loss_per_day)} | "
        f"retrain cost {money(n.retrain_cost)} | net {money(n.net_value)} | ROI {num(n.roi, '.2f')} | "
        f"budget left {money(n.budget_left)}"
    )
    if retrain is not None:
        c.print(
            f"retrain {retrain.retrain_id}: {retrain.state}, challenger v{retrain.challenger_version} "
            f"{num(retrain.challenger_metric)} vs champion {num(retrain.champion_metric)}"
        )


def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every watched model's latest decision, retrains in flight and the outbox (dead letters included)."""
    _, models, store = store_context(config)
    names = list(models)
    latest = store.latest_decisions(names)
    last_checks = store.latest_check_summaries(names)
    retraining = store.models_retraining()
    rows: list[dict[str, Any]] = []
    for name, cfg in sorted(models.items()):
        d = latest.get(name)
        check = last_checks.get(name)
        rows.append(
            {
                "model": name,
                "version": d.version if d else None,
                "decision": d.action if d else None,
                "reasons": d.reasons if d else [],
                "decided_at": d.decided_at.isoformat(timespec="seconds") if d else None,
                "metric": check.metric if check else None,
                "metric_now": check.metric_value if check else None,
                "source": check.metric_source if check else None,
                "drift_share": check.drift_share if check else None,
                "last_check": check.status if check else None,
                "retrain_in_flight": name in retraining,
                "owner": cfg.owner,
            }
        )
    counts = store.outbox_counts()
    dead: list[dict[str, Any]] = [
        {"id": o.id, "kind": o.kind, "model": o.model, "attempts": o.attempts, "error": o.last_error}
        for o in store.outbox_items("dead", limit=50)
    ]
    if as_json:
        print(json.dumps({"models": rows, "outbox": counts, "dead_letters": dead}, indent=2, default=str))
        return
    t = Table(title="Watched models")
    for col in ("model", "version", "decision", "reasons", "metric now", "source", "drift share", "in flight", "at"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["model"],
            r["version"] or "-",
            r["decision"] or "-",
            ", ".join(r["reasons"]) or "-",
            num(r["metric_now"]),
            r["source"] or "-",
            num(r["drift_share"], ".2f"),
            "yes" if r["retrain_in_flight"] else "no",
            r["decided_at"] or "-",
        )
    c = console()
    c.print(t)
    c.print("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"))
    if dead:
        d_t = Table(title="Dead letters (delivery gave up; fix the target and re-queue)")
        for col in ("id", "kind", "model", "attempts", "last error"):
            d_t.add_column(col)
        for x in dead:
            d_t.add_row(str(x["id"]), x["kind"], x["model"], str(x["attempts"]), (x["error"] or "")[:80])
        c.print(d_t)


def history(
    model: Annotated[str, typer.Argument()],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """MODEL's past decisions and retrains, newest first."""
    from controller.adapters.store.records import to_jsonable

    _, models, store = store_context(config)
    known_model(models, model)
    decisions = store.decisions(model, limit=limit)
    retrains = store.retrains(model, limit=limit)
    if as_json:
        out = {
            "decisions": [
                {
                    "id": d.id,
                    "at": d.decided_at.isoformat(),
                    "version": d.version,
                    "action": d.action,
                    "reasons": d.reasons,
                    "summary": d.summary,
                    "numbers": d.numbers,
                    "source": d.signal_source,
                }
                for d in decisions
            ],
            "retrains": [
                {
                    "id": r.id,
                    "state": r.state,
                    "created_at": r.created_at.isoformat(),
                    "champion_version": r.champion_version,
                    "challenger_version": r.challenger_version,
                    "champion_metric": r.champion_metric,
                    "challenger_metric": r.challenger_metric,
                    "cost_estimate": r.cost_estimate,
                    "actual_cost": r.actual_cost,
                    "cost_anomaly": r.cost_anomaly,
                }
                for r in retrains
            ],
        }
        print(json.dumps(to_jsonable(out), indent=2))
        return
    t = Table(title=f"Decisions of {model}")
    for col in ("at", "version", "decision", "reasons", "source", "loss/day", "cost", "net"):
        t.add_column(col)
    for d in decisions:
        n = d.numbers
        t.add_row(
            d.decided_at.strftime("%Y-%m-%d %H:%M"),
            d.version or "-",
            d.action,
            ", ".join(d.reasons),
            d.signal_source,
            money(n.get("loss_per_day")),
            money(n.get("retrain_cost")),
            money(n.get("net_value")),
        )
    c = console()
    c.print(t)
    if retrains:
        r_t = Table(title=f"Retrains of {model}")
        for col in ("id", "state", "champion", "challenger", "metric champ -> chall", "estimate", "actual"):
            r_t.add_column(col)
        for r in retrains:
            r_t.add_row(
                str(r.id),
                r.state,
                f"v{r.champion_version}",
                f"v{r.challenger_version or '-'}",
                f"{num(r.champion_metric)} -> {num(r.challenger_metric)}",
                money(r.cost_estimate),
                money(r.actual_cost),
            )
        c.print(r_t)


def audit(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    gate: Annotated[
        list[str] | None,
        typer.Option(help="Also exit 1 on these ROI flags: idle, duplicate, retire (repeatable)."),
    ] = None,
) -> None:
    """Inventory of every watched model; exits 1 when one breaks a governance rule (a CI/CD gate)."""
    from controller.core.governance import governance_violations
    from controller.reactors.check import owner_of
    from controller.reactors.costs import roi_audit
    from controller.reactors.dependents import component_inventory

    gates = set(gate or [])
    if gates - {"idle", "duplicate", "retire"}:
        raise UserError(f"--gate: expected idle, duplicate or retire, got {', '.join(sorted(gates))}")
    ctx = context(config)
    now = ctx.clock()
    roi = {m.model: m for m in roi_audit(ctx).models}
    rows: list[dict[str, Any]] = []
    for name, cfg in sorted(ctx.models.items()):
        policy = ctx.policy(cfg)
        try:
            tags = ctx.registry.model_tags(cfg.registered_model)
        except GiveUp:
            tags = {}
        spend = ctx.store.spent(f"model:{name}", now)
        source = cfg.data.source
        where = source.path if source.kind == "files" else (source.table or "query")
        econ = cfg.economics
        m = roi[name]
        flags = ["idle"] * m.idle + ["duplicate"] * bool(m.duplicate_of) + ["retire"] * (m.verdict == "retire")
        rows.append(
            {
                "model": name,
                "registered_model": cfg.registered_model,
                "owner": owner_of(cfg, tags),
                "team": cfg.team,
                "business_purpose": cfg.business_purpose or tags.get("business_purpose"),
                "infrastructure": econ.infrastructure if econ else None,
                "training_data": f"{source.kind}:{where}",
                "update_frequency": cfg.schedule.cron or f"every {cfg.schedule.every}",
                "spend_this_month": spend,
                "monthly_budget": policy.monthly_budget,
                "violations": governance_violations(
                    owner_of(cfg, tags),
                    cfg.business_purpose or tags.get("business_purpose"),
                    econ,
                    team=cfg.team,
                    monthly_spend=spend,
                    monthly_budget=policy.monthly_budget,
                ),
                "roi_flags": flags,
                "verdict": m.verdict,
                "duplicate_of": m.duplicate_of,
                "measured_spend_this_month": m.spend if m.cost_source == "ledger" else None,
            }
        )
    broken = [r for r in rows if r["violations"] or gates & set(r["roi_flags"])]
    components = component_inventory(ctx)
    if as_json:
        print(json.dumps({"models": rows, "compliant": not broken, "components": components}, indent=2))
    else:
        t = Table(title="Model inventory")
        cols = ("model", "owner", "purpose", "infra", "training data", "updates", "spend / budget", "ROI", "violations")
        for col in cols:
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(
                r["model"],
                r["owner"] or "-",
                r["business_purpose"] or "-",
                r["infrastructure"] or "-",
                r["training_data"],
                r["update_frequency"],
                f"{money(r['spend_this_month'])} / {money(r['monthly_budget'])}",
                ", ".join([r["verdict"], *r["roi_flags"]]),
                "\n".join(r["violations"]) or "ok",
            )
        c = console()
        c.print(t)
        c.print(
            f"{len(broken)} of {len(rows)} model(s) break a governance rule or a gated ROI flag"
            if broken
            else "all models compliant"
        )
        if components:
            c.print(_components_table(components))
    if broken:
        raise typer.Exit(1)


def _components_table(components: list[dict[str, Any]]) -> Table:
    """Shared components and the models built on them: one cause behind several models shows here."""
    t = Table(title="Shared components")
    for col in ("component", "newest", "marked", "model", "in use", "upstream", "verdict on its window"):
        t.add_column(col, overflow="fold")
    for comp in components:
        marked = {True: "yes", False: "[red]no tag[/]", None: "[red]not found[/]"}[comp["marked"]]
        for i, d in enumerate(comp["dependents"]):
            first = i == 0
            t.add_row(comp["component"] if first else "", f"v{comp['newest'] or '-'}" if first else "",
                      marked if first else "", d["model"], f"v{d['in_use']}", d["upstream"] or "-",
                      d["summary"] or d["verdict"] or "-")  # fmt: skip
    return t


def validate_component_command(
    component: Annotated[str, typer.Argument(help="The component's registered model name.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every model that uses COMPONENT now: each validates its newest version on its own window."""
    from controller.reactors.dependents import validate_component
    from controller.reactors.outbox import deliver_outbox

    ctx = context(config)
    outcomes = validate_component(ctx, component)
    deliver_outbox(ctx)
    rows = []
    for o in outcomes:
        record: dict[str, Any] = next((r for r in o.signals.get("components", []) if r["component"] == component), {})
        validation = record.get("validation") or {}
        rows.append({"model": o.model, "check_id": o.check_id, "skipped": o.skipped, "status": record.get("status"),
                     "verdict": validation.get("verdict"), "summary": validation.get("summary") or
                     validation.get("message")})  # fmt: skip
    if as_json:
        print(json.dumps({"component": component, "dependents": rows}, indent=2))
        return
    c = console()
    for r in rows:
        what = "already checked for this version" if r["skipped"] else r["summary"] or r["status"]
        c.print(f"[bold]{r['model']}[/] (check {r['check_id']}): {r['verdict'] or '-'}: {what}")


def baseline(
    model: Annotated[str, typer.Argument(help="The model's name (its file in configs/models/).")],
    reference: Annotated[
        str, typer.Option(help="Labeled reference rows (Parquet or CSV; a path or URL): the training data.")
    ],
    version: Annotated[str | None, typer.Option(help="Version to attach to (default: the watched alias).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Attach a baseline (reference profile, metrics, scores) to a version registered without one."""
    from controller.adapters.datasource import read_table, require_columns
    from controller.reactors.baseline import build_baseline, features_of

    ctx = context(config)
    cfg = ctx.model(model)
    v = version or ctx.registry.resolve(cfg.registered_model, cfg.alias).version
    ref = read_table(reference)
    features = features_of(cfg, list(ref.columns))
    require_columns(ref, [*features, cfg.data.label_column], str(reference))
    step(f"scoring {len(ref):,} reference rows with v{v} and building its profile", len(ref))
    fitted = ctx.load_model(cfg.registered_model, v)
    base = build_baseline(cfg, fitted, ref, ref, features)
    step(f"storing the baseline of v{v} in the registry", len(ref))
    run_id = ctx.registry.attach_baseline(cfg.registered_model, v, base)
    metrics = ", ".join(f"{k} {val:.4f}" for k, val in sorted(base.metrics.items()))
    short_hash = (base.profile_sha256 or "")[:12]
    console().print(
        f"{cfg.registered_model} v{v}: baseline from {len(ref):,} rows, profile {short_hash} (run {run_id}); {metrics}"
    )


def _override(kind: str, model: str, author: str, reason: str, hours: float, config: Path | None) -> None:
    from controller.adapters.store.tables import utcnow

    ctx = context(config)
    ctx.model(model)
    if not author.strip() or not reason.strip():
        raise UserError("--author and --reason must not be empty: an override is part of the audit trail")
    expires = utcnow() + timedelta(hours=hours)
    oid = ctx.store.add_override(model, kind, author, reason, expires)
    console().print(f"{kind} #{oid} for {model} by {author}, until {expires.isoformat(timespec='minutes')}")


def approve(
    model: Annotated[str, typer.Argument()],
    author: Annotated[str, typer.Option(help="Who approves (recorded).")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    hours: Annotated[float, typer.Option(min=0.01, help="The approval expires after this.")] = 72.0,
    config: ConfigOpt = None,
) -> None:
    """Approve a retrain of MODEL: the next check triggers unless a veto reason holds."""
    _override("approve", model, author, reason, hours, config)


def veto(
    model: Annotated[str, typer.Argument()],
    author: Annotated[str, typer.Option(help="Who vetoes (recorded).")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    hours: Annotated[float, typer.Option(min=0.01, help="The veto expires after this.")] = 168.0,
    config: ConfigOpt = None,
) -> None:
    """Veto retraining MODEL until the veto expires."""
    _override("veto", model, author, reason, hours, config)


def register(app: typer.Typer) -> None:
    for command in (check, status, history, audit, baseline, approve, veto):
        app.command()(command)
    app.command("validate-component")(validate_component_command)
