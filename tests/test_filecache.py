"""The machine's decoded copies of data files: the same rows as a fresh decode, never a stale copy."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from controller.adapters.datasource import FileDataSource, load_window
from controller.adapters.filecache import FileCache
from controller.config import load_models, load_service_config
from controller.errors import ConfigError, DataError
from controller.reactors.check import run_check
from tests.helpers import T0, make_rows, write_configs
from tests.test_service import WEEK, _setup

PLAIN = {"id", "timestamp", "label"}


def _write(path: Path, rows: pd.DataFrame, mtime_ns: int | None = None) -> None:
    rows.to_parquet(path)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def _copies(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.arrow")) if folder.exists() else []


@pytest.mark.parametrize(
    ("shuffle", "plain", "bounds"),
    [
        (False, PLAIN, (1, 5)),  # times in order: a slice
        (True, PLAIN, (1, 5)),  # out of order: a mask
        (False, None, (1, 5)),  # text as strings
        (False, PLAIN, (None, None)),  # no bounds: every row
        (False, PLAIN, (-3, 30)),  # every row inside the bounds
    ],
)
def test_a_copy_reads_the_rows_a_decode_reads(
    tmp_path: Path, shuffle: bool, plain: set[str] | None, bounds: tuple[int | None, int | None]
) -> None:
    rows = make_rows(2000, T0, seed=3)
    rows.loc[rows.index[::9], "color"] = None
    if shuffle:
        rows = rows.sample(frac=1.0, random_state=1)
    _write(tmp_path / "rows.parquet", rows)
    start, end = (None if b is None else T0 + timedelta(days=b) for b in bounds)
    expected = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp", text_as_categories=plain).read(start, end)
    cache = FileCache(tmp_path / "cache", 2**30)
    source = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp", text_as_categories=plain, cache=cache)
    first = source.read(start, end)
    assert len(_copies(tmp_path / "cache")) == 1
    second = source.read(start, end)
    for got in (first, second):
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    if plain is not None:
        assert isinstance(second["color"].dtype, pd.CategoricalDtype)
    assert 0 < len(expected) <= 2000


def test_the_second_read_comes_from_the_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "rows.parquet", make_rows(500, T0, seed=4))
    cache = FileCache(tmp_path / "cache", 2**30)
    source = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp", text_as_categories=PLAIN, cache=cache)
    first = source.read()

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded the Parquet file again")

    monkeypatch.setattr(pq, "ParquetFile", no_decoding)
    pd.testing.assert_frame_equal(source.read(), first)
    other_way = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp", text_as_categories=None, cache=cache)
    with pytest.raises(DataError, match="decoded the Parquet file again"):
        other_way.read()  # text as strings is another copy, not made yet


def test_a_rewritten_file_is_decoded_again_never_read_from_a_stale_copy(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    _write(path, make_rows(500, T0, seed=5), mtime_ns=1_700_000_000_000_000_000)
    cache = FileCache(tmp_path / "cache", 2**30)
    source = FileDataSource(str(path), "timestamp", text_as_categories=PLAIN, cache=cache)
    old = source.read()
    new_rows = make_rows(500, T0, seed=6)  # same size and shape, other values
    _write(path, new_rows, mtime_ns=1_700_000_000_000_000_001)
    new = source.read()
    assert not new["x1"].equals(old["x1"])
    pd.testing.assert_series_equal(new["x1"], new_rows["x1"], check_names=False)
    assert len(_copies(tmp_path / "cache")) == 2


def test_a_copy_cut_short_is_decoded_again_and_replaced(tmp_path: Path) -> None:
    rows = make_rows(800, T0, seed=7)
    _write(tmp_path / "rows.parquet", rows)
    cache = FileCache(tmp_path / "cache", 2**30)
    source = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp", text_as_categories=PLAIN, cache=cache)
    expected = source.read()
    (copy,) = _copies(tmp_path / "cache")
    whole = copy.stat().st_size
    copy.write_bytes(copy.read_bytes()[: whole // 2])
    pd.testing.assert_frame_equal(source.read(), expected)
    assert _copies(tmp_path / "cache") == [copy] and copy.stat().st_size == whole  # written again, whole
    pd.testing.assert_frame_equal(source.read(), expected)


def test_a_folder_that_cannot_be_written_only_costs_the_copies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = make_rows(300, T0, seed=8)
    _write(tmp_path / "rows.parquet", rows)
    (tmp_path / "not-a-folder").write_text("x")
    cache = FileCache(tmp_path / "not-a-folder" / "files", 2**30)
    source = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp", cache=cache)
    with caplog.at_level(logging.WARNING, logger="controller.adapters.filecache"):
        first, second = source.read(), source.read()
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == 300
    warnings = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1  # said once, then the process works without copies


def test_the_copies_read_least_recently_go_first(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", 2**40)
    sources = []
    for i in range(4):
        _write(tmp_path / f"f{i}.parquet", make_rows(2000, T0, seed=20 + i))
        sources.append(FileDataSource(str(tmp_path / f"f{i}.parquet"), "timestamp", cache=cache))
        sources[-1].read()
    copies = {p.name: p.stat().st_size for p in _copies(tmp_path / "cache")}
    assert len(copies) == 4
    for i, p in enumerate(sorted(_copies(tmp_path / "cache"), key=lambda p: p.stat().st_mtime_ns)):
        os.utime(p, ns=(10**18 + i, 10**18 + i))  # distinct, known times of last read
    sources[0].read()  # f0 read again: now the most recent (its copy's time is now)
    size = max(copies.values())
    cache.max_bytes = int(size * 2.6)  # room for two after trimming to 80%
    removed = cache.trim()
    left = _copies(tmp_path / "cache")
    assert len(left) == 2 and removed == sum(copies.values()) - sum(p.stat().st_size for p in left)
    kept = {p.name for p in left}
    # f0 (read last) stays; of the others, the one read most recently stays
    for i in (0, 3):
        _, slot = cache.lookup(tmp_path / f"f{i}.parquet", None)
        assert slot is not None and slot.copy.name in kept
    assert cache.trim() == 0  # under the limit: nothing to do


@pytest.mark.parametrize(
    "model",
    [{}, {"drift": {"engine": "evidently", "categorical": ["color"]}}, {"multivariate_drift": True}],
    ids=["default", "evidently", "multivariate"],
)
def test_a_check_from_copies_decides_as_a_check_that_decodes(tmp_path: Path, model: dict[str, object]) -> None:
    """Columns mapped from a copy are read-only: every engine reads them without writing to them."""
    week = make_rows(3000, T0, seed=11, shift=0.4)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cached = _setup(tmp_path / "a", week, **model)
    decoding = _setup(tmp_path / "b", week, **model)
    decoding.file_cache = None
    assert cached.file_cache is not None
    for ctx in (cached, decoding):  # the same history on both; the first leaves the copies
        run_check(ctx, "m1", now=T0 + WEEK)
    assert len(_copies(cached.file_cache.folder)) == 2  # the rows and the labels
    later = T0 + WEEK + timedelta(hours=1)
    from_copies, decoded = run_check(cached, "m1", now=later), run_check(decoding, "m1", now=later)
    assert from_copies.signals["n_rows"] > 2900
    for out in (from_copies, decoded):
        out.signals.pop("drift_report_run", None)  # a run id of each registry's own
    assert from_copies.signals == decoded.signals
    assert from_copies.decision == decoded.decision


def test_the_file_cache_follows_the_config(tmp_path: Path) -> None:
    path = write_configs(tmp_path, "data/*.parquet")
    text = path.read_text()
    path.write_text(text + "file_cache_mb: 0\n")
    assert load_service_config(path, env={}).file_cache_mb == 0
    path.write_text(text + "file_cache_mb: -1\n")
    with pytest.raises(ConfigError, match="file_cache_mb"):
        load_service_config(path, env={})


def test_a_window_with_the_cache_joins_the_labels_as_without(tmp_path: Path) -> None:
    rows = make_rows(1500, T0, seed=12)
    (tmp_path / "data").mkdir()
    rows.drop(columns="label").to_parquet(tmp_path / "data" / "rows.parquet")
    rows.sample(frac=0.6, random_state=2)[["id", "label"]].to_parquet(tmp_path / "labels.parquet")
    path = write_configs(tmp_path, "data/*", labels="labels.parquet")
    cfg = load_models(load_service_config(path, env={}))["m1"]
    cache = FileCache(tmp_path / "cache", 2**30)
    end = T0 + timedelta(days=7)
    plain = load_window(cfg, end, categories=True)
    for _ in range(2):  # decoded and copied, then from the copies
        got = load_window(cfg, end, categories=True, cache=cache)
        pd.testing.assert_frame_equal(got.rows, plain.rows)
        assert got.n_labeled == plain.n_labeled == 900


def test_a_file_of_several_row_groups_read_as_categories_is_copied_and_read_back(tmp_path: Path) -> None:
    """Each row group has its own dictionary; the copy unifies them (an IPC file holds one)."""
    n = 200_000
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
            "color": np.where(np.arange(n) < n // 2, "red", "blue"),
            "x": np.arange(n),
        }
    )
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "rows.parquet", row_group_size=50_000)
    cache = FileCache(tmp_path / "cache", 2**30)
    source = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp", text_as_categories={"timestamp"}, cache=cache)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, 12, tzinfo=UTC)
    decoded = source.read(start, end)
    assert len(_copies(tmp_path / "cache")) == 1 and not cache._broken
    from_copy = source.read(start, end)
    pd.testing.assert_frame_equal(from_copy, decoded)
    assert str(from_copy["color"].dtype) == "category" and len(from_copy) == 36 * 3600
