"""``retrainctl drift`` and ``retrainctl profile build``: drift checks from the command line.

Data files are Parquet or CSV (by extension). Bad input (a missing or unreadable file, an
unknown column, a bad option) prints one ``error: ...`` line on stderr and exits with code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from controller.cli.common import check_output
from controller.errors import DataError, UserError

if TYPE_CHECKING:
    import pandas as pd

    from detectors.drift import DriftOptions, DriftReport
    from detectors.profile import ReferenceProfile


def _split(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _fail(exc: Exception) -> typer.Exit:
    print(f"error: {exc}", file=sys.stderr)
    return typer.Exit(UserError.exit_code)


def drift_command(
    current: Annotated[str, typer.Option("--current", help="Current window (Parquet or CSV; a path or URL).")],
    reference: Annotated[str | None, typer.Option("--reference", help="Reference data (Parquet or CSV).")] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="A stored reference profile (instead of data; a path or URL).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="native or evidently.")] = "native",
    columns: Annotated[str | None, typer.Option("--columns", help="Comma-separated columns to check.")] = None,
    categorical: Annotated[
        str | None, typer.Option("--categorical", help="Comma-separated categorical columns.")
    ] = None,
    stattest: Annotated[str | None, typer.Option("--stattest", help="One test for all columns.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Run evidently and write its HTML report here (slow on large data).")
    ] = None,
) -> None:
    """Compare a current window with the reference, column by column."""
    from pydantic import ValidationError

    from controller.adapters.datasource import read_frame
    from controller.adapters.objectstore import local_copy
    from detectors.drift import DriftOptions, detect_drift
    from detectors.profile import ProfileFormatError, ReferenceProfile

    if html is not None:
        check_output(html, "--html")
    try:
        if (reference is None) == (profile is None):
            raise UserError("give exactly one of --reference or --profile")
        try:
            options = DriftOptions(
                engine=engine,
                columns=_split(columns),
                categorical=_split(categorical) or (),
                stattest=stattest,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UserError(f"--{first['loc'][0]}: {first['msg']}") from None
        ref: pd.DataFrame | ReferenceProfile
        if profile is not None:
            with local_copy(profile, "profile") as stored:
                if not stored.exists():
                    raise DataError(f"profile file not found: {profile}")
                try:
                    ref = ReferenceProfile.load(stored)
                except ProfileFormatError as exc:
                    raise DataError(f"{profile}: {exc}") from None
        else:
            assert reference is not None
            ref = read_frame(reference, "reference")
        cur = read_frame(current, "current")
        _check_columns(ref, cur, options)
        if html is not None or engine == "evidently":
            from detectors.evidently_engine import run_evidently

            run = run_evidently(ref, cur, options.model_copy(update={"engine": "evidently"}))
            report = run.report
            if html is not None:
                run.save_html(html)
        else:
            report = detect_drift(ref, cur, options)
    except UserError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        _print_table(report)


def _check_columns(ref: pd.DataFrame | ReferenceProfile, cur: pd.DataFrame, options: DriftOptions) -> None:
    known = set(ref.columns) | set(cur.columns)
    for flag, names in (("--columns", options.columns or ()), ("--categorical", options.categorical)):
        unknown = [c for c in names if c not in known]
        if unknown:
            raise DataError(f"{flag}: unknown column(s) {', '.join(unknown)} (the data has {', '.join(sorted(known))})")


def _print_table(report: DriftReport) -> None:
    table = Table(title="Drift by column")
    for header in ("column", "kind", "test", "score", "threshold", "drifted", "status", "nulls ref -> cur"):
        table.add_column(header)
    for c in report.columns:
        nulls = (
            ""
            if c.null_share_ref is None or c.null_share_cur is None
            else f"{c.null_share_ref:.2f} -> {c.null_share_cur:.2f}"
        )
        table.add_row(
            c.column,
            c.kind,
            c.test,
            "-" if c.score is None else f"{c.score:.4g}",
            f"{c.threshold:g}",
            {True: "[red]yes[/red]", False: "no", None: "-"}[c.drifted],
            c.status,
            nulls,
        )
    out = Console(highlight=False, width=140)
    out.print(table)
    verdict = "[red]DRIFT[/red]" if report.drifted else "no drift"
    out.print(f"{report.n_drifted} of {report.n_columns} columns drifted (share {report.drift_share:.2f}): {verdict}")


def profile_build(
    reference: Annotated[str, typer.Option("--reference", help="Reference data (Parquet or CSV; a path or URL).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the profile.")],
    columns: Annotated[str | None, typer.Option("--columns", help="Comma-separated columns (default: all).")] = None,
    categorical: Annotated[
        str | None, typer.Option("--categorical", help="Comma-separated categorical columns.")
    ] = None,
) -> None:
    """Build a reference profile file from reference data."""
    from controller.adapters.datasource import read_frame
    from detectors.profile import build_profile

    check_output(out, "--out")
    try:
        df = read_frame(reference, "reference")
        try:
            prof = build_profile(df, categorical=_split(categorical) or (), columns=_split(columns))
        except KeyError as exc:
            raise DataError(str(exc.args[0])) from None
        try:
            prof.save(out)
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror}") from None
    except UserError as exc:
        raise _fail(exc) from None
    print(f"profile of {prof.n_rows} rows x {len(prof.columns)} columns written to {out} (sha256 {prof.content_hash})")


def register(app: typer.Typer) -> None:
    """Add ``drift`` and the ``profile`` group to ``retrainctl``."""
    app.command("drift")(drift_command)
    profiles = typer.Typer(help="Reference profiles.", no_args_is_help=True)
    profiles.command("build")(profile_build)
    app.add_typer(profiles, name="profile")
