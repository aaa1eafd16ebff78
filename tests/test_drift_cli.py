"""The drift CLI through typer's runner: JSON shape, profiles, and one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from controller.cli import app
from detectors.profile import ReferenceProfile

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 1500), "city": rng.choice(["a", "b", "c"], 1500)})
    cur = pd.DataFrame({"x": rng.normal(1.5, 1, 1200), "city": rng.choice(["a", "b", "c"], 1200)})
    paths = {"ref": tmp_path / "ref.parquet", "cur": tmp_path / "cur.csv", "bad": tmp_path / "bad.parquet"}
    ref.to_parquet(paths["ref"])
    cur.to_csv(paths["cur"], index=False)
    paths["bad"].write_bytes(b"not parquet at all")
    return paths


def test_json_has_exactly_the_issue_shape(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["drift", "--reference", str(files["ref"]), "--current", str(files["cur"]), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"dataset", "columns"}
    assert set(doc["dataset"]) == {"drift_share", "n_drifted", "n_columns", "drifted"}
    assert doc["dataset"] == {"drift_share": 0.5, "n_drifted": 1, "n_columns": 2, "drifted": True}
    assert [set(c) for c in doc["columns"]] == [
        {"column", "kind", "test", "score", "threshold", "drifted", "status"}
    ] * 2
    x, city = doc["columns"]
    assert (x["column"], x["kind"], x["test"], x["drifted"], x["status"]) == (
        "x",
        "numerical",
        "wasserstein",
        True,
        "ok",
    )
    assert (city["kind"], city["test"], city["drifted"]) == ("categorical", "jensenshannon", False)


def test_profile_build_then_check_from_profile_gives_same_json(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ref.profile"
    built = runner.invoke(app, ["profile", "build", "--reference", str(files["ref"]), "--out", str(out)])
    assert built.exit_code == 0, built.output
    assert ReferenceProfile.load(out).content_hash in built.stdout
    args = ["drift", "--current", str(files["cur"]), "--json"]
    from_profile = runner.invoke(app, [*args, "--profile", str(out)])
    from_data = runner.invoke(app, [*args, "--reference", str(files["ref"])])
    assert from_profile.exit_code == 0
    assert json.loads(from_profile.stdout) == json.loads(from_data.stdout)


def test_table_output_names_every_column(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["drift", "--reference", str(files["ref"]), "--current", str(files["cur"])])
    assert result.exit_code == 0
    assert "wasserstein" in result.stdout and "city" in result.stdout and "1 of 2 columns drifted" in result.stdout


def test_evidently_engine_writes_html(files: dict[str, Path], tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    result = runner.invoke(
        app,
        ["drift", "--reference", str(files["ref"]), "--current", str(files["cur"]), "--engine", "evidently",
         "--html", str(html), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"]["n_drifted"] == 1
    assert html.stat().st_size > 10_000 and b"<html" in html.read_bytes()[:2000].lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reference", "{missing}", "--current", "{cur}"], "reference file not found"),
        (["--reference", "{bad}", "--current", "{cur}"], "cannot read reference file"),
        (["--reference", "{ref}", "--current", "{cur}", "--columns", "x,nope"], "--columns: unknown column(s) nope"),
        (["--reference", "{ref}", "--current", "{cur}", "--engine", "spark"], "--engine"),
        (["--reference", "{ref}", "--current", "{cur}", "--stattest", "kss"], "valid names"),
        (["--current", "{cur}"], "exactly one of --reference or --profile"),
        (["--profile", "{bad}", "--current", "{cur}"], "not a reference profile"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    files: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    paths = {k: str(v) for k, v in files.items()} | {"missing": str(tmp_path / "nope.parquet")}
    result = runner.invoke(app, ["drift", *[a.format(**paths) for a in args]])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_profile_build_unknown_column_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["profile", "build", "--reference", str(files["ref"]), "--out", str(tmp_path / "p"), "--columns", "zz"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: column(s) not in the reference data: zz"
