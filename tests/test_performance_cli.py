"""``retrainctl estimate`` and ``retrainctl performance`` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from controller.cli.performance import register

runner = CliRunner()
app = typer.Typer()
register(app)


def _frame(n: int, shift: float, rng: np.random.Generator) -> pd.DataFrame:
    score = 1 / (1 + np.exp(-(rng.normal(shift, 1.5, size=n))))
    y = (rng.uniform(size=n) < score).astype(int)
    return pd.DataFrame({"x": rng.normal(size=n), "score": score, "pred": (score >= 0.5).astype(int), "y": y})


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {"ref": tmp_path / "ref.parquet", "cur": tmp_path / "cur.csv", "nolabel": tmp_path / "nolabel.parquet"}
    _frame(8000, 0.0, rng).to_parquet(paths["ref"])
    cur = _frame(3000, 0.8, rng)
    cur.loc[2500:, "y"] = np.nan  # the last rows' labels have not arrived
    cur.to_csv(paths["cur"], index=False)
    cur.drop(columns=["y"]).to_parquet(paths["nolabel"])
    return paths


def test_estimate_json_has_one_row_per_chunk_with_realized_where_labels_exist(files: dict[str, Path]) -> None:
    args = ["estimate", "--reference", str(files["ref"]), "--current", str(files["cur"]), "--target", "y"]
    res = runner.invoke(app, [*args, "--pred", "pred", "--proba", "score", "--chunk-rows", "1000", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [(c["start"], c["end"]) for c in out["chunks"]] == [(0, 1000), (1000, 2000), (2000, 3000)]
    for chunk in out["chunks"]:
        assert set(chunk["metrics"]) == {"roc_auc", "accuracy", "f1"}
        assert chunk["n_labeled"] == (500 if chunk["start"] == 2000 else 1000)
        auc = chunk["metrics"]["roc_auc"]
        assert auc["lower"] < auc["estimate"] < auc["upper"]
        assert auc["realized"] is not None and abs(auc["estimate"] - auc["realized"]) < 0.05
    assert out["summary"]["accuracy"]["chunks_with_realized"] == 3


def test_estimate_without_target_in_current_leaves_realized_null(files: dict[str, Path]) -> None:
    args = ["estimate", "--reference", str(files["ref"]), "--current", str(files["nolabel"]), "--target", "y"]
    res = runner.invoke(app, [*args, "--pred", "pred", "--proba", "score", "--metrics", "accuracy", "--json"])
    assert res.exit_code == 0, res.output
    (chunk,) = json.loads(res.stdout)["chunks"]
    assert chunk["metrics"]["accuracy"]["realized"] is None and chunk["metrics"]["accuracy"]["estimate"] > 0.5


def test_estimate_regression_uses_the_direct_loss_estimator(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)

    def frame(n: int, shift: float) -> pd.DataFrame:
        a, b = rng.normal(size=n), rng.normal(shift, 1, size=n)
        y = a + rng.normal(0, 0.2 + 0.5 * np.abs(b), size=n)
        return pd.DataFrame({"a": a, "b": b, "pred": a, "y": y})

    frame(3000, 0.0).to_parquet(tmp_path / "r.parquet")
    frame(1000, 0.5).to_parquet(tmp_path / "c.parquet")
    args = ["estimate", "--reference", str(tmp_path / "r.parquet"), "--current", str(tmp_path / "c.parquet")]
    res = runner.invoke(app, [*args, "--target", "y", "--pred", "pred", "--json"])
    assert res.exit_code == 0, res.output
    mae = json.loads(res.stdout)["chunks"][0]["metrics"]["mae"]
    assert mae["realized"] == pytest.approx(mae["estimate"], rel=0.1)


def test_performance_json_reports_coverage_and_intervals(files: dict[str, Path]) -> None:
    args = ["performance", "--current", str(files["cur"]), "--target", "y", "--pred", "pred", "--proba", "score"]
    res = runner.invoke(app, [*args, "--json", "--n-boot", "50"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_labeled"] == 2500 and out["n_total"] == 3000
    auc = out["metrics"]["roc_auc"]
    assert auc["status"] == "ok" and auc["lower"] < auc["value"] < auc["upper"]
    text = runner.invoke(app, [*args, "--n-boot", "20", "--min-samples", "5000"])
    assert text.exit_code == 0 and "insufficient" in text.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--current", "missing.parquet", "--target", "y", "--pred", "pred"], "not found"),
        (["--target", "nope", "--pred", "pred"], "no column(s) nope"),
        (["--target", "y", "--pred", "pred", "--proba", "nope"], "no column(s) nope"),
        (["--target", "y", "--pred", "pred", "--task", "ranking"], "--task"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(files: dict[str, Path], extra: list[str], message: str) -> None:
    args = ["performance", "--current", str(files["cur"]), *extra]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_estimate_bad_reference_is_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    args = ["estimate", "--reference", str(bad), "--current", str(files["cur"]), "--target", "y", "--pred", "pred"]
    res = runner.invoke(app, [*args, "--proba", "score"])
    assert res.exit_code == 2 and res.stderr.startswith("error: cannot read reference file")


def test_estimate_multiclass_maps_proba_columns_to_sorted_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)

    def frame(n: int, conc: list[float]) -> pd.DataFrame:
        p = rng.dirichlet(conc, size=n)
        idx = np.minimum((rng.uniform(size=(n, 1)) > p.cumsum(axis=1)).sum(axis=1), 2)
        labels = np.array(["ant", "bee", "cow"])
        return pd.DataFrame(
            {"p_ant": p[:, 0], "p_bee": p[:, 1], "p_cow": p[:, 2], "pred": labels[p.argmax(axis=1)], "y": labels[idx]}
        )

    frame(6000, [0.5, 0.5, 0.5]).to_parquet(tmp_path / "r.parquet")
    frame(2000, [0.3, 0.6, 0.9]).to_parquet(tmp_path / "c.parquet")
    args = ["estimate", "--reference", str(tmp_path / "r.parquet"), "--current", str(tmp_path / "c.parquet")]
    probas = ["--proba", "p_ant", "--proba", "p_bee", "--proba", "p_cow"]
    res = runner.invoke(app, [*args, "--target", "y", "--pred", "pred", *probas, "--json"])
    assert res.exit_code == 0, res.output
    acc = json.loads(res.stdout)["chunks"][0]["metrics"]["accuracy"]
    assert acc["realized"] == pytest.approx(acc["estimate"], abs=0.04)
    two = runner.invoke(app, [*args, "--target", "y", "--pred", "pred", "--proba", "p_ant", "--proba", "p_bee"])
    assert two.exit_code == 2 and "3 classes" in two.stderr
