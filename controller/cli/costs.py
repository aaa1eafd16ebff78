"""``retrainctl costs import|report|anomalies|check`` and ``retrainctl roi``: what models really cost."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from controller.cli.common import ConfigOpt, JsonOpt, console, money, num
from controller.errors import UserError

costs_app = typer.Typer(help="Spend from billing exports (FOCUS): import, report, anomalies.", no_args_is_help=True)

FromOpt = Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (UTC, inclusive).")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (UTC, inclusive).")]


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option}: expected a date YYYY-MM-DD, got {text!r}") from None


def _basis(text: str | None) -> Any:
    if text is not None and text not in ("effective", "billed"):
        raise UserError(f"--basis: expected effective or billed, got {text!r}")
    return text


@costs_app.command("import")
def import_(
    files: Annotated[
        list[str],
        typer.Argument(help="FOCUS exports: CSV or Parquet, plain or gzipped; paths or URLs of objects (s3://...)."),
    ],
    source: Annotated[str, typer.Option(help="Name of the billing source; an import replaces its days.")] = "default",
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import FOCUS billing exports into the ledger, replacing every day they cover for SOURCE."""
    import contextlib
    import sys
    import time

    from controller.adapters.objectstore import local_copy
    from controller.reactors.costs import import_exports, ledger_context

    ctx = ledger_context(config)
    started = time.perf_counter()

    def progress(f: Path, rows: int) -> None:
        if not as_json:
            print(f"\r{f.name}: {rows:,} rows read", end="", file=sys.stderr, flush=True)

    with contextlib.ExitStack() as copies:
        # a bucket's exports are copied here whole before the import touches the ledger
        local = [copies.enter_context(local_copy(f, "FOCUS export")) for f in files]
        summary, reconciled = import_exports(ctx, local, source, on_batch=progress)
    if not as_json:
        print(file=sys.stderr)
    took = time.perf_counter() - started
    out = {
        "source": summary.source,
        "rows_read": summary.rows_read,
        "ledger_rows": summary.rows_stored,
        "from": summary.first_day.isoformat() if summary.first_day else None,
        "to": summary.last_day.isoformat() if summary.last_day else None,
        "days_replaced": summary.days,
        "rows_replaced": summary.replaced_rows,
        "billed_total": summary.billed_total,
        "effective_total": summary.effective_total,
        "retrains_reconciled": [r.id for r in reconciled],
        "seconds": round(took, 2),
    }
    if as_json:
        print(json.dumps(out, indent=2))
        return
    console().print(
        f"{summary.source}: {summary.rows_read:,} billing rows -> {summary.rows_stored:,} ledger rows, "
        f"{out['from']} to {out['to']} ({summary.days} days replaced, {summary.replaced_rows:,} earlier rows); "
        f"billed {summary.billed_total:,.2f}, effective {summary.effective_total:,.2f}; "
        f"{len(reconciled)} retrain(s) reconciled with their bill; {took:.1f} s"
    )


@costs_app.command("report")
def report(
    start: FromOpt = None,
    end: ToOpt = None,
    by: Annotated[list[str] | None, typer.Option("--by", help="model, team or stage (repeatable).")] = None,
    basis: Annotated[str | None, typer.Option(help="effective (amortized, default) or billed.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Spend by model, team and/or stage over a range of days; rows + unattributed = total."""
    from controller.reactors.costs import default_range, ledger_context, spend_report

    ctx = ledger_context(config)
    first, last = default_range(ctx, _day(start, "--from"), _day(end, "--to"))
    rep = spend_report(ctx, first, last, by or ["model"], _basis(basis))
    if as_json:
        print(json.dumps(rep.to_json(), indent=2))
        return
    t = Table(title=f"Spend {first} to {last} ({rep.currency or '-'}, {basis or ctx.service.costs.basis})")
    for k in rep.by:
        t.add_column(k)
    t.add_column("cost", justify="right")
    for r in rep.rows:
        t.add_row(*(str(getattr(r, k) or "-") for k in rep.by), f"{r.cost:,.2f}")
    t.add_row(*(["unattributed"] + [""] * (len(rep.by) - 1)), f"{rep.unattributed:,.2f}")
    t.add_row(*(["total"] + [""] * (len(rep.by) - 1)), f"{rep.total:,.2f}")
    console().print(t)


@costs_app.command("anomalies")
def anomalies(
    start: FromOpt = None,
    end: ToOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the spend anomaly detector over the ledger for a range of days (whatever was seen before)."""
    from controller.reactors.costs import default_range, find_anomalies, ledger_context

    ctx = ledger_context(config)
    first, last = default_range(ctx, _day(start, "--from"), _day(end, "--to"))
    found = find_anomalies(ctx, first, last)
    if as_json:
        print(json.dumps({"anomalies": [a.to_json() for a in found]}, indent=2))
        return
    t = Table(title=f"Spend anomalies {first} to {last}")
    for col in ("date", "model", "team", "stage", "cost", "expected", "score"):
        t.add_column(col)
    for a in found:
        t.add_row(
            a.day.isoformat(), a.model or "-", a.team or "-", a.stage or "-", f"{a.cost:,.2f}", f"{a.expected:,.2f}",
            f"{a.score:.1f}",
        )  # fmt: skip
    console().print(t)
    console().print(f"{len(found)} anomal{'y' if len(found) == 1 else 'ies'}")


@costs_app.command("check")
def check_spend(config: ConfigOpt = None) -> None:
    """The daily spend check now: record new anomalies and queue their owners' cost.anomaly webhooks."""
    from controller.reactors.costs import check_spend as run
    from controller.reactors.costs import ledger_context

    ctx = ledger_context(config)
    new = run(ctx)
    for a in new:
        console().print(f"{a.day} {a.series}: {a.cost:,.2f} against {a.expected:,.2f} expected (score {a.score:.1f})")
    console().print(f"{len(new)} new spend anomal{'y' if len(new) == 1 else 'ies'}")


def roi(
    month: Annotated[str | None, typer.Option(help="Calendar month YYYY-MM (default: this one).")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """ROI audit: every watched model's measured spend by stage, value, retrains, ROI and verdict."""
    from controller.reactors.costs import ledger_context, roi_audit

    ctx = ledger_context(config)
    rep = roi_audit(ctx, month)
    if as_json:
        print(json.dumps(rep.to_json(), indent=2))
        return
    t = Table(title=f"ROI audit {rep.month} ({rep.currency or '-'})")
    for col in ("model", "owner", "spend by stage", "spend", "value", "retrains (est / billed / recovered)", "ROI",
                "verdict"):  # fmt: skip
        t.add_column(col, overflow="fold")
    for m in rep.models:
        stages = ", ".join(f"{s} {v:,.0f}" for s, v in m.spend_by_stage.items()) or "-"
        r = m.retrains
        t.add_row(
            m.model,
            m.owner or "-",
            stages,
            f"{money(m.spend)} ({m.cost_source})",
            money(m.value),
            f"{r.count}: {money(r.estimated)} / {money(r.billed)} / {money(r.recovered_value)}",
            num(m.roi, ".2f"),
            m.verdict + ("".join(f"\n- {x}" for x in m.reasons)),
        )
    c = console()
    c.print(t)
    c.print(f"unattributed spend this month: {rep.unattributed:,.2f}")
    groups = "; ".join(", ".join(g) for g in rep.duplicates)
    c.print(f"idle: {', '.join(rep.idle) or 'none'}; duplicates: {groups or 'none'}")


def register(app: typer.Typer) -> None:
    app.add_typer(costs_app, name="costs")
    app.command()(roi)
