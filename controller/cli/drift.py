"""``retrainctl drift`` and ``retrainctl profile build``: drift checks from the command line.

Data files are Parquet or CSV (by extension). Bad input (a missing or unreadable file, an
unknown column, a bad option, an embedding spec that matches nothing) prints one ``error: ...``
line on stderr and exits with code 2.

Embeddings are named ``--embeddings NAME=SPEC`` (repeatable): SPEC is a list column, a
comma-separated list of columns, or a prefix glob such as ``emb_*``. Free-text columns are
recognised by their kind or named with ``--text COL`` (repeatable).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from controller.cli.common import check_output, embedding_specs, step
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
    embeddings: Annotated[
        list[str] | None,
        typer.Option("--embeddings", help="NAME=SPEC: a list column, columns a,b or a glob emb_* (repeatable)."),
    ] = None,
    embedding_method: Annotated[
        str | None, typer.Option("--embedding-method", help="model (default), ratio, distance or mmd.")
    ] = None,
    text: Annotated[list[str] | None, typer.Option("--text", help="A free-text column (repeatable).")] = None,
) -> None:
    """Compare a current window with the reference, column by column (and embeddings and texts)."""
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
        specs = embedding_specs(embeddings)
        try:
            options = DriftOptions(
                engine=engine,
                columns=_split(columns),
                categorical=_split(categorical) or (),
                stattest=stattest,
                embeddings=specs,
                embedding={"method": embedding_method},
                text=tuple(text) if text else None,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            message = first["msg"].removeprefix("Value error, ")
            if not first["loc"]:  # a rule across options
                raise UserError(f"--embeddings/--text: {message}") from None
            flag = {"embedding": "embedding-method"}.get(str(first["loc"][0]), str(first["loc"][0]))
            raise UserError(f"--{flag}: {message}") from None
        if (specs or text) and html is not None:
            raise UserError("--embeddings and --text run on the native engine only (no --html)")
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
        _check_embeddings(ref, cur, options)
        rows = len(cur) + (0 if isinstance(ref, ReferenceProfile) else len(ref))
        step(f"drift: {len(cur):,} current rows against the {'profile' if profile else 'reference'}", rows)
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
    named = {"--columns": options.columns or (), "--categorical": options.categorical, "--text": options.text or ()}
    for flag, names in named.items():
        unknown = [c for c in names if c not in known]
        if unknown:
            raise DataError(f"{flag}: unknown column(s) {', '.join(unknown)} (the data has {', '.join(sorted(known))})")


def _check_embeddings(ref: pd.DataFrame | ReferenceProfile, cur: pd.DataFrame, options: DriftOptions) -> None:
    """Each embedding must be found in both windows (and in a profile) before any work."""
    from detectors.embeddings import resolve_columns
    from detectors.profile import ReferenceProfile

    for name, spec in options.embeddings.items():
        try:
            if isinstance(ref, ReferenceProfile):
                kept = {e.name: e for e in ref.embeddings}
                if name not in kept:
                    have = ", ".join(kept) or "none"
                    raise DataError(f"--embeddings: the profile has no embedding {name!r} (it has: {have}); "
                                    "build it with profile build --embeddings")  # fmt: skip
                resolve_columns(cur.columns, list(kept[name].columns), name)
            else:
                for frame in (ref, cur):
                    resolve_columns(frame.columns, spec, name)
        except ValueError as exc:
            raise DataError(f"--embeddings: {exc}") from None


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
    yes_no = {True: "[red]yes[/red]", False: "no", None: "-"}
    if report.embeddings:
        emb = Table(title="Drift by embedding")
        for header in ("embedding", "method", "score", "threshold", "drifted", "rows ref / cur", "note"):
            emb.add_column(header)
        for e in report.embeddings:
            score = "-" if e.score is None else f"{e.score:.4g}"
            emb.add_row(e.name, e.method, score, f"{e.threshold:.4g}", yes_no[e.drifted],
                        f"{e.n_reference} / {e.n_current}", e.message)  # fmt: skip
        out.print(emb)
    if report.text:
        texts = Table(title="Text content drift (domain classifier)")
        for header in ("column", "test", "AUC", "threshold", "drifted", "words of the current window"):
            texts.add_column(header)
        for t in report.text:
            score = "-" if t.score is None else f"{t.score:.3f}"
            texts.add_row(t.column, t.test, score, f"{t.threshold:.3f}", yes_no[t.drifted],
                          ", ".join(t.top_words) or t.message)  # fmt: skip
        out.print(texts)
    verdict = "[red]DRIFT[/red]" if report.drifted else "no drift"
    out.print(f"{report.n_drifted} of {report.n_columns} columns drifted (share {report.drift_share:.2f}): {verdict}")


def profile_build(
    reference: Annotated[str, typer.Option("--reference", help="Reference data (Parquet or CSV; a path or URL).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the profile.")],
    columns: Annotated[str | None, typer.Option("--columns", help="Comma-separated columns (default: all).")] = None,
    categorical: Annotated[
        str | None, typer.Option("--categorical", help="Comma-separated categorical columns.")
    ] = None,
    embeddings: Annotated[
        list[str] | None,
        typer.Option("--embeddings", help="NAME=SPEC: a list column, columns a,b or a glob emb_* (repeatable)."),
    ] = None,
    text: Annotated[list[str] | None, typer.Option("--text", help="A free-text column (repeatable).")] = None,
) -> None:
    """Build a reference profile file from reference data."""
    from controller.adapters.datasource import read_frame
    from detectors.profile import build_profile

    check_output(out, "--out")
    try:
        specs = embedding_specs(embeddings)
        df = read_frame(reference, "reference")
        step(f"building the profile of {len(df):,} rows", len(df))
        try:
            prof = build_profile(df, categorical=_split(categorical) or (), columns=_split(columns),
                                 embeddings=specs, text=tuple(text) if text else None)  # fmt: skip
        except KeyError as exc:
            raise DataError(str(exc.args[0])) from None
        except ValueError as exc:
            raise DataError(f"--embeddings: {exc}") from None
        try:
            prof.save(out)
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror}") from None
    except UserError as exc:
        raise _fail(exc) from None
    kept = ((prof.embeddings, "embedding(s)"), (prof.texts, "text column(s)"))
    extra = "".join(f", {len(items)} {label}" for items, label in kept if items)
    print(f"profile of {prof.n_rows} rows x {len(prof.columns)} columns{extra} written to {out} "
          f"(sha256 {prof.content_hash})")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``drift`` and the ``profile`` group to ``retrainctl``."""
    app.command("drift")(drift_command)
    profiles = typer.Typer(help="Reference profiles.", no_args_is_help=True)
    profiles.command("build")(profile_build)
    app.add_typer(profiles, name="profile")
