"""The backtest's drift policies with an embedding: its columns are tested as one embedding
(evidently's default ``model`` method), not column by column, and count once in the drift share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from controller.backtest import error_matrix
from controller.backtest.data import BacktestConfig, prepare
from controller.cli import app
from controller.errors import DataError


def _stream_frame(seed: int = 0) -> pd.DataFrame:
    """3,600 rows: a number and an 8-component embedding whose mean moves in the last third."""
    rng = np.random.default_rng(seed)
    n = 3600
    emb = rng.normal(size=(n, 8))
    emb[2400:] += 0.6
    label = (emb[:, 0] + rng.normal(0, 0.5, n) > 0.3).astype(int)
    return pd.DataFrame({"x": rng.normal(size=n), **{f"emb_{i}": emb[:, i] for i in range(8)}, "label": label})


def test_an_embedding_counts_once_in_the_backtest_drift_share() -> None:
    stream = prepare(_stream_frame(), "label", 600)
    plain = error_matrix(stream, BacktestConfig(600, 2, 2, 10.0, 1.0))
    grouped = error_matrix(stream, BacktestConfig(600, 2, 2, 10.0, 1.0, embeddings=(("e", "emb_*"),)))
    # the model fitted on chunks 0-1 (serving from 2), on chunk 4 (moved): x alone stays, the embedding moved
    assert plain.drift_share[2, 4] == 8 / 9  # eight moved columns of nine
    assert grouped.drift_share[2, 4] == 1 / 2  # the embedding, and x
    assert grouped.dataset_drift[2, 4] and not grouped.dataset_drift[2, 2] and not grouped.dataset_drift[2, 3]
    assert np.array_equal(plain.errors, grouped.errors, equal_nan=True)  # the models are the same


def test_backtest_cli_takes_embeddings(tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    _stream_frame().to_parquet(data)
    args = ["backtest", "--data", str(data), "--target", "label", "--chunk-rows", "600", "--initial-chunks", "2"]
    args += ["--window", "2", "--retrain-cost", "10", "--error-cost", "1", "--json"]
    ok = CliRunner().invoke(app, [*args, "--embeddings", "e=emb_*"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(app, [*args, "--embeddings", "e=vec_*"])
    assert isinstance(bad.exception, DataError) and "--embeddings: embedding 'e': no column matches" in str(
        bad.exception
    )
