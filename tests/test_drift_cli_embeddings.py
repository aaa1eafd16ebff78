"""``retrainctl drift`` and ``profile build`` with ``--embeddings`` and ``--text``: the JSON shape,
the same answer from a stored profile as from data, and one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from controller.cli import app

runner = CliRunner()
WORDS = [f"w{i}" for i in range(200)]


def _frame(rng: np.random.Generator, shift: float, extra: list[str]) -> pd.DataFrame:
    e = rng.normal(shift, 1, (1200, 16))
    return pd.DataFrame({
        "x": rng.normal(size=1200),
        "vec": list(e),
        **{f"emb_{i}": e[:, i] for i in range(8)},
        "review": [" ".join(rng.choice(WORDS + extra, 8)) for _ in range(1200)],
    })  # fmt: skip


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    paths = {"ref": tmp_path / "ref.parquet", "cur": tmp_path / "cur.parquet", "same": tmp_path / "same.parquet"}
    _frame(rng, 0.0, []).to_parquet(paths["ref"])
    _frame(rng, 0.5, ["refund", "broken"] * 10).to_parquet(paths["cur"])
    _frame(rng, 0.0, []).to_parquet(paths["same"])
    return paths


def _json(args: list[str]) -> dict[str, object]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_json_adds_embeddings_and_text(files: dict[str, Path]) -> None:
    base = ["drift", "--reference", str(files["ref"]), "--json", "--embeddings", "v=vec", "--embeddings", "g=emb_*"]
    doc = _json([*base, "--current", str(files["cur"]), "--embedding-method", "distance", "--text", "review"])
    assert set(doc) == {"dataset", "columns", "embeddings", "text"}
    assert doc["embeddings"] == [
        {"name": "v", "method": "distance", "score": pytest.approx(2.0, abs=0.2), "threshold": 0.2, "drifted": True},
        {"name": "g", "method": "distance", "score": pytest.approx(1.4, abs=0.2), "threshold": 0.2, "drifted": True},
    ]
    (text,) = doc["text"]  # type: ignore[misc]
    assert set(text) == {"column", "score", "threshold", "drifted", "top_words"}
    assert text["column"] == "review" and text["drifted"] is True and set(text["top_words"][:2]) == {"refund", "broken"}
    columns = [c["column"] for c in doc["columns"]]  # type: ignore[attr-defined]
    assert columns == ["x", "review.length", "review.oov_share", "review.non_letter_share"]
    same = _json([*base, "--current", str(files["same"])])
    assert [e["drifted"] for e in same["embeddings"]] == [False, False]  # type: ignore[attr-defined]
    assert same["text"][0]["drifted"] is False  # type: ignore[index]  # recognised by its kind


def test_profile_with_embeddings_gives_the_same_json(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ref.profile"
    built = runner.invoke(app, ["profile", "build", "--reference", str(files["ref"]), "--out", str(out),
                                "--embeddings", "v=vec", "--text", "review"])  # fmt: skip
    assert built.exit_code == 0, built.output
    assert "1 embedding(s), 1 text column(s)" in built.stdout
    args = ["drift", "--current", str(files["cur"]), "--json", "--embeddings", "v=vec", "--text", "review"]
    assert _json([*args, "--profile", str(out)]) == _json([*args, "--reference", str(files["ref"])])
    # a profile's embeddings are checked without naming them again
    assert _json(["drift", "--current", str(files["cur"]), "--json", "--profile", str(out)])["embeddings"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--embeddings", "vec"], "--embeddings: expected NAME=SPEC"),
        (["--embeddings", "v=nope_*"], "--embeddings: embedding 'v': no column matches 'nope_*'"),
        (["--embeddings", "v=x,y"], "--embeddings: embedding 'v': column(s) not in the data: y"),
        (["--embeddings", "v=vec", "--embedding-method", "pca"], "--embedding-method: Input should be"),
        (["--embeddings", "v=vec", "--engine", "evidently"], "checked by the native engine: use engine 'native'"),
        (["--embeddings", "v=vec", "--html", "out.html"], "run on the native engine only (no --html)"),
        (["--text", "nope"], "--text: unknown column(s) nope"),
    ],
)
def test_bad_flags_are_one_line_errors(files: dict[str, Path], extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["drift", "--reference", str(files["ref"]), "--current", str(files["cur"]), *extra])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    assert message in lines[0], lines[0]


def test_a_profile_without_the_embedding_is_a_data_error(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "plain.profile"
    build = ["profile", "build", "--reference", str(files["ref"]), "--out", str(out)]
    assert runner.invoke(app, build).exit_code == 0
    args = ["drift", "--profile", str(out), "--current", str(files["cur"])]
    result = runner.invoke(app, [*args, "--embeddings", "g=emb_*"])
    assert result.exit_code == 2
    # the list column 'vec' is an embedding of its own name without being asked
    assert "the profile has no embedding 'g' (it has: vec)" in result.stderr
    bad = runner.invoke(app, [*build, "--embeddings", "v=review"])
    assert bad.exit_code == 2
    assert bad.stderr == "error: --embeddings: embedding 'v', column 'review': holds str values, not lists of numbers\n"
