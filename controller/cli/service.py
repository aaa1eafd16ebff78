"""``retrainctl run-once`` and ``retrainctl deliver``: the service in-process, without Celery.

``run-once`` runs every due check (and the retrains they trigger) once, for cron users;
``deliver`` drains the outbox by hand. The Celery worker and beat commands come from
:mod:`workers.commands`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from controller.cli.common import ConfigOpt
from controller.errors import GiveUp, RetryLater, UserError

if TYPE_CHECKING:
    from controller.reactors.context import Context
    from controller.reactors.outbox import DeliveryReport


def run_once(
    config: ConfigOpt = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")] = None,
    retrain: Annotated[bool, typer.Option(help="Run triggered retrains in-process.")] = True,
    deliver: Annotated[bool, typer.Option(help="Deliver the outbox (tags, webhooks) at the end.")] = True,
    spend: Annotated[bool, typer.Option(help="Run the spend check (anomalies in the cost ledger).")] = True,
) -> None:
    """Run every due check in-process, once (for cron, without workers); exit 1 if a check failed."""
    from controller.reactors.check import run_check
    from controller.reactors.context import Context
    from controller.reactors.retrain import reclaim_retrains, run_retrain
    from controller.reactors.schedule import due_checks, slot_key

    ctx = Context.from_config(config)
    reclaimed = reclaim_retrains(ctx)
    unknown = [m for m in model or [] if m not in ctx.models]
    if unknown:
        raise UserError(f"--model: unknown model(s) {', '.join(unknown)}; configured: {', '.join(sorted(ctx.models))}")
    out = Console(highlight=False, soft_wrap=True)
    now = ctx.clock()
    due = [m for m in due_checks(ctx, now) if not model or m in model]
    failed = 0
    for retrain_id in reclaimed if retrain else []:
        # A retrain an earlier run left half-done (its process died) is redone before new checks.
        try:
            out.print(f"retrain {retrain_id} (reclaimed): {run_retrain(ctx, retrain_id).state}")
        except (RetryLater, GiveUp, UserError) as exc:
            failed += 1
            out.print(f"retrain {retrain_id} (reclaimed) failed: {exc}")
    for name in due:
        try:
            outcome = run_check(ctx, name, request_key=slot_key(ctx.models[name], now))
        except (RetryLater, GiveUp, UserError) as exc:
            failed += 1
            out.print(f"{name}: check failed: {exc}")
            continue
        action = outcome.decision.action.value if outcome.decision else "already done"
        out.print(f"{name}: {action}" + (f" ({outcome.decision.summary})" if outcome.decision else ""))
        if retrain and outcome.retrain_id is not None:
            try:
                r = run_retrain(ctx, outcome.retrain_id)
                out.print(f"{name}: retrain {outcome.retrain_id} {r.state}")
            except (RetryLater, GiveUp, UserError) as exc:
                failed += 1
                out.print(f"{name}: retrain {outcome.retrain_id} failed: {exc}")
    if spend:
        from controller.reactors.costs import check_spend

        new = check_spend(ctx, now)
        for a in new:
            out.print(f"spend anomaly {a.day} {a.series}: {a.cost:,.2f} against {a.expected:,.2f} expected")
    if deliver:
        report = _drain(ctx)
        out.print(
            f"outbox: {report.delivered} delivered, {report.failed} to retry, {report.dead} dead, "
            f"{report.suppressed} suppressed"
        )
    out.print(f"{len(due)} due, {len(due) - failed} checked, {failed} failed")
    if failed:
        raise typer.Exit(1)


def deliver(
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Items per batch.")] = 100,
) -> None:
    """Deliver every due outbox item (MLflow tags, webhooks) now, in-process."""
    from controller.reactors.context import Context

    ctx = Context.from_config(config)
    report = _drain(ctx, limit)
    counts = ctx.store.outbox_counts()
    Console(highlight=False, soft_wrap=True).print(
        f"{report.delivered} delivered, {report.failed} to retry, {report.dead} dead, {report.suppressed} suppressed; "
        f"outbox now: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty")
    )


def _drain(ctx: Context, limit: int = 100) -> DeliveryReport:
    from controller.reactors.outbox import DeliveryReport, deliver_outbox

    total = DeliveryReport()
    while True:
        report = deliver_outbox(ctx, limit=limit)
        total += report
        if report.delivered + report.failed + report.dead + report.suppressed < limit:
            return total


def register(app: typer.Typer) -> None:
    """Add ``run-once`` and ``deliver`` to ``retrainctl``."""
    app.command("run-once")(run_once)
    app.command("deliver")(deliver)
