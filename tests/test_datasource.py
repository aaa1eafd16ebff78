"""Data sources against real files, a real SQLite database and the machine's PostgreSQL."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from controller.adapters.datasource import FileDataSource, SqlDataSource, load_window, read_table
from controller.config import load_models, load_service_config
from controller.errors import DataError
from tests.helpers import T0, make_rows, write_configs


def _files(tmp_path: Path) -> pd.DataFrame:
    week1 = make_rows(500, T0, seed=1)
    week2 = make_rows(500, T0 + timedelta(days=7), seed=2)
    (tmp_path / "data").mkdir()
    week1.drop(columns="label").to_parquet(tmp_path / "data" / "w1.parquet")
    week2.drop(columns="label").to_csv(tmp_path / "data" / "w2.csv", index=False)
    return pd.concat([week1, week2], ignore_index=True)


def test_window_reads_parquet_and_csv_by_time(tmp_path: Path) -> None:
    rows = _files(tmp_path)
    src = FileDataSource(str(tmp_path / "data" / "*"), "timestamp")
    second = src.read(T0 + timedelta(days=7), T0 + timedelta(days=14))
    assert len(second) == 500 and set(second["id"]) == set(rows["id"].iloc[500:])


def test_labels_join_by_id_with_partial_coverage_and_delay(tmp_path: Path) -> None:
    rows = _files(tmp_path)
    labels = rows.iloc[500:].sample(frac=0.4, random_state=0)[["id", "label"]]
    labels.to_parquet(tmp_path / "labels.parquet")
    path = write_configs(tmp_path, "data/*", labels="labels.parquet")
    cfg = load_models(load_service_config(path, env={}))["m1"]
    end = T0 + timedelta(days=14)
    window = load_window(cfg, end)
    assert len(window.rows) == 500
    assert window.n_labeled == 200 and window.coverage == pytest.approx(0.4)
    joined = window.labeled.set_index("id")["label"].sort_index()
    assert joined.equals(labels.set_index("id")["label"].sort_index().astype(joined.dtype))
    delayed = cfg.model_copy(update={"data": cfg.data.model_copy(update={"label_delay_hours": 72.0})})
    young = load_window(delayed, end)
    cutoff = pd.Timestamp(end - timedelta(hours=72))
    ts = pd.to_datetime(young.rows["timestamp"], utc=True)
    assert young.rows.loc[ts > cutoff, "label"].isna().all()
    assert 0 < young.n_labeled < 200


def test_a_label_sent_again_counts_once_and_the_last_one_wins(tmp_path: Path) -> None:
    rows = _files(tmp_path)
    labels = rows.iloc[500:510][["id", "label"]].copy()
    corrected = labels.iloc[:3].assign(label=1 - labels["label"].iloc[:3])  # sent again, corrected
    pd.concat([labels, corrected], ignore_index=True).to_parquet(tmp_path / "labels.parquet")
    path = write_configs(tmp_path, "data/*", labels="labels.parquet")
    window = load_window(load_models(load_service_config(path, env={}))["m1"], T0 + timedelta(days=14))
    assert window.n_labeled == 10
    got = window.labeled.set_index("id")["label"]
    assert (got.loc[corrected["id"]].to_numpy() == corrected["label"].to_numpy()).all()
    rest = labels.iloc[3:]
    assert (got.loc[rest["id"]].to_numpy() == rest["label"].to_numpy()).all()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sql_source_reads_a_time_range(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'prod.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    rows = make_rows(300, T0, seed=3)
    rows["timestamp"] = pd.to_datetime(rows["timestamp"]).dt.tz_localize(None)
    engine = sa.create_engine(url)
    rows.to_sql("predictions", engine, index=False)
    engine.dispose()
    mid = T0 + timedelta(days=3)
    got = SqlDataSource(url, "timestamp", table="predictions").read(T0, mid)
    expected = rows[rows["timestamp"] < mid.replace(tzinfo=None)]
    assert sorted(got["id"]) == sorted(expected["id"])
    by_query = SqlDataSource(url, "timestamp", query="SELECT id, timestamp, x1 FROM predictions").read(mid, None)
    assert len(by_query) == len(rows) - len(expected)


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read as parquet"):
        read_table(tmp_path / "junk.parquet")
    with pytest.raises(DataError, match="no data files found"):
        FileDataSource(str(tmp_path / "none-*.csv"), "timestamp").read()
    with pytest.raises(DataError, match=r"predictions at sqlite"):
        SqlDataSource(f"sqlite:///{tmp_path / 'empty.db'}", "timestamp", table="predictions").read()


@pytest.mark.parametrize("layout", ["null-time", "in-order", "shuffled"])
@pytest.mark.parametrize("row_group_size", [None, 64])
@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Berlin"])
def test_parquet_window_filter_matches_parsing_every_timestamp(
    tmp_path: Path, tz: str | None, row_group_size: int | None, layout: str
) -> None:
    """The pyarrow filter on a timestamp column keeps exactly what ``pd.to_datetime(utc=True)`` keeps
    (a naive column holds UTC), with bounds in any time zone; in a file of one row group (filtered
    after decoding: sliced when the times are in order without nulls, masked otherwise) and of
    several (row groups skipped by their statistics)."""
    rows = make_rows(300, T0, seed=3)
    times = pd.to_datetime(rows["timestamp"], utc=True)
    rows["timestamp"] = times.dt.tz_localize(None) if tz is None else times.dt.tz_convert(tz)
    if layout == "null-time":
        rows.loc[5, "timestamp"] = pd.NaT
    elif layout == "shuffled":
        rows = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    rows.to_parquet(tmp_path / "rows.parquet", row_group_size=row_group_size)
    start = (T0 + timedelta(hours=20)).astimezone(timezone(timedelta(hours=-5)))
    end = T0 + timedelta(days=3)
    got = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp").read(start, end)
    whole = pd.read_parquet(tmp_path / "rows.parquet")
    ts = pd.to_datetime(whole["timestamp"], utc=True, errors="coerce")
    want = whole.loc[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
    assert 0 < len(got) < len(rows)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Paris"])
def test_a_file_wholly_inside_the_window_is_not_cut_row_by_row(tmp_path: Path, tz: str | None) -> None:
    """The file's own statistics say every time is in the window: nothing to cut, same rows; a
    file reaching out of it, or holding a null time, is cut."""
    import pyarrow.parquet as pq

    from controller.adapters.datasource import _all_within

    rows = make_rows(200, T0, seed=4)
    times = pd.to_datetime(rows["timestamp"], utc=True)
    rows["timestamp"] = times.dt.tz_localize(None) if tz is None else times.dt.tz_convert(tz)
    path = tmp_path / "rows.parquet"
    rows.to_parquet(path)
    start, end = T0 - timedelta(hours=1), T0 + timedelta(days=8)
    assert _all_within(pq.ParquetFile(path), "timestamp", start, end)
    got = FileDataSource(str(path), "timestamp").read(start, end)
    pd.testing.assert_frame_equal(got, pd.read_parquet(path))
    first, last = times.min().to_pydatetime(), times.max().to_pydatetime()
    assert not _all_within(pq.ParquetFile(path), "timestamp", first + timedelta(seconds=1), end)
    assert not _all_within(pq.ParquetFile(path), "timestamp", start, last)  # the end is excluded
    assert _all_within(pq.ParquetFile(path), "timestamp", first, last + timedelta(microseconds=1))
    rows.loc[3, "timestamp"] = pd.NaT
    rows.to_parquet(path)
    assert not _all_within(pq.ParquetFile(path), "timestamp", start, end)
    assert len(FileDataSource(str(path), "timestamp").read(start, end)) == len(rows) - 1


def test_labels_in_the_rows_order_join_as_a_hash_join_would() -> None:
    from controller.adapters.datasource import _arrived

    rows = pd.DataFrame({"id": [10, 11, 12, 13], "x": [0.1, 0.2, 0.3, 0.4]})

    def hashed(labels: pd.DataFrame) -> list[object]:
        last = labels.drop_duplicates("id", keep="last").set_index("id")["label"]
        return last.reindex(rows["id"]).tolist()

    cases = [
        pd.DataFrame({"id": [10, 11, 12, 13], "label": [1, 0, 1, 1]}),  # same order: taken as is
        pd.DataFrame({"id": [13, 11, 12, 10], "label": [1, 0, 1, 0]}),  # shuffled
        pd.DataFrame({"id": [10, 12], "label": [1, 0]}),  # some not arrived yet
        pd.DataFrame({"id": [10, 11, 11, 13], "label": [1, 0, 1, 1]}),  # one sent again: the last counts
    ]
    for labels in cases:
        got = _arrived(labels, rows, "id", "label")
        assert pd.Series(got).tolist() == pytest.approx(hashed(labels), nan_ok=True)
    ordered = _arrived(cases[0], rows, "id", "label")
    assert ordered.dtype.kind == "i"
    ordered[0] = 9  # a copy: the labels frame is not written through
    assert cases[0]["label"].iloc[0] == 1


@pytest.mark.parametrize("seed", range(40))
def test_labels_with_increasing_ids_join_as_a_hash_join_would(seed: int) -> None:
    """Labels whose ids increase (any subset of the rows, in any order of the rows) are joined by
    binary search: the same values and dtype as the hash join, missing values included."""
    from controller.adapters.datasource import _arrived

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    row_ids = rng.permutation(np.arange(1000, 1000 + 3 * n, 3)) if seed % 2 else np.arange(1000, 1000 + 3 * n, 3)
    rows = pd.DataFrame({"id": row_ids, "x": rng.random(n)})
    kept = np.sort(rng.choice(row_ids, int(rng.integers(1, n + 1)), replace=False))
    extra = np.array([5, 2_000_000]) if seed % 3 == 0 else np.array([], dtype=np.int64)  # ids of no row
    label_ids = np.sort(np.concatenate([kept, extra])).astype(np.int64)
    label_values = {
        0: rng.integers(0, 2, len(label_ids)),
        1: rng.random(len(label_ids)),
        2: rng.choice(["pos", "neg"], len(label_ids)).astype(object),
        3: rng.random(len(label_ids)) < 0.5,
    }[seed % 4]
    labels = pd.DataFrame({"id": label_ids, "label": label_values})
    hashed = pd.Series(labels["label"].to_numpy(), index=pd.Index(label_ids)).reindex(row_ids).to_numpy()
    got = _arrived(labels, rows, "id", "label")
    assert got.dtype == hashed.dtype
    assert pd.Series(got).equals(pd.Series(hashed))


def test_a_window_reads_feature_text_as_categories_and_keeps_the_rest(tmp_path: Path) -> None:
    rows = make_rows(400, T0, seed=3).assign(prediction=lambda d: np.where(d["x1"] > 0, "yes", "no"))
    rows["id"] = rows["id"].astype(str)
    rows["label"] = np.where(rows["label"] == 1, "pos", "neg")
    (tmp_path / "data").mkdir()
    rows.to_parquet(tmp_path / "data" / "rows.parquet")
    path = write_configs(tmp_path, "data/*")
    cfg = load_models(load_service_config(path, env={}))["m1"]
    end = T0 + timedelta(days=7)
    as_text, as_categories = load_window(cfg, end), load_window(cfg, end, categories=True)
    assert isinstance(as_categories.rows["color"].dtype, pd.CategoricalDtype)
    for column in ("id", "label", "prediction"):  # what is joined on, scored against or compared stays text
        assert as_categories.rows[column].dtype == object, column
    assert as_text.rows["color"].dtype == object
    assert as_categories.rows.astype({"color": object}).equals(as_text.rows)


def test_a_window_before_after_or_around_rows_in_order_gets_none_or_all_of_them(tmp_path: Path) -> None:
    rows = make_rows(100, T0, seed=5)
    rows.to_parquet(tmp_path / "rows.parquet")
    src = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp")
    assert len(src.read(T0 - timedelta(days=9), T0 - timedelta(days=8))) == 0
    assert len(src.read(T0 + timedelta(days=8), T0 + timedelta(days=9))) == 0
    assert len(src.read(T0 + timedelta(days=3), T0 + timedelta(days=2))) == 0  # an empty range
    first = pd.Timestamp(rows["timestamp"].min()).to_pydatetime()
    assert len(src.read(first, T0 + timedelta(days=9))) == 100  # the start is included
    assert len(src.read(T0 - timedelta(days=1), first)) == 0  # the end is not


def test_a_window_of_several_files_reads_the_same_rows_with_text_as_categories(tmp_path: Path) -> None:
    """Files with different text values (so different dictionaries), Parquet and CSV together: the
    window holds the same rows either way (pandas joins categoricals of different categories as
    objects)."""
    (tmp_path / "data").mkdir()
    first = make_rows(200, T0, seed=6)
    second = make_rows(200, T0 + timedelta(days=7), seed=7).assign(color="purple")
    third = make_rows(100, T0 + timedelta(days=3), seed=8)
    first.to_parquet(tmp_path / "data" / "a.parquet")
    second.to_parquet(tmp_path / "data" / "b.parquet")
    third.to_csv(tmp_path / "data" / "c.csv", index=False)
    path = write_configs(tmp_path, "data/*")
    cfg = load_models(load_service_config(path, env={}))["m1"]
    end = T0 + timedelta(days=9)
    plain, categories = load_window(cfg, end), load_window(cfg, end, categories=True)
    assert 0 < len(plain.rows) < 500  # the last 7 days: parts of all three files
    assert set(plain.rows["color"]) == {"red", "green", "blue", "purple"}
    assert categories.rows.astype({"color": object}).equals(plain.rows)


@pytest.mark.parametrize("categories", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_parquet_files_joined_as_arrow_read_what_pandas_joins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, categories: bool, cached: bool
) -> None:
    """A window of several Parquet files (other text values, rows out of time order, nulls, a
    file wholly outside the window) joined as Arrow tables holds what joining each file's rows
    with pandas gives."""
    from controller.adapters.filecache import FileCache

    (tmp_path / "data").mkdir()
    parts = [
        make_rows(300, T0, seed=9),
        make_rows(200, T0 + timedelta(days=4), seed=10).assign(color="purple"),
        make_rows(150, T0 + timedelta(days=2), seed=11).sample(frac=1.0, random_state=3),
        make_rows(50, T0 - timedelta(days=30), seed=12),
    ]
    parts[0].loc[parts[0].index[::5], "color"] = None
    for i, part in enumerate(parts):
        part.drop(columns="label").to_parquet(tmp_path / "data" / f"p{i}.parquet", index=False)
    cache = FileCache(tmp_path / "cache", 2**30) if cached else None
    plain = {"id", "timestamp"} if categories else None
    source = FileDataSource(str(tmp_path / "data"), "timestamp", text_as_categories=plain, cache=cache)
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=8)
    for _ in range(2 if cached else 1):  # with a cache: decoded, then from the copies
        joined = source.read(start, end)
        assert isinstance(joined.index, pd.RangeIndex) and len(joined) > 300
        if categories:
            assert isinstance(joined["color"].dtype, pd.CategoricalDtype)
            assert set(joined["color"].cat.categories) == {"red", "green", "blue", "purple"}
        with monkeypatch.context() as m:
            m.setattr(FileDataSource, "_joined", lambda self, files, start, end: None)
            by_pandas = source.read(start, end)
        pd.testing.assert_frame_equal(joined.astype({"color": object}), by_pandas.astype({"color": object}))
    everything = pd.concat(parts)
    inside = everything[(everything["timestamp"] >= start) & (everything["timestamp"] < end)]
    assert sorted(joined["id"]) == sorted(inside["id"])
    # a file that keeps its (shuffled) pandas index as a column: pandas joins the files, dropping it
    parts[2].drop(columns="label").to_parquet(tmp_path / "data" / "p2.parquet")
    assert list(source.read(start, end).columns) == list(joined.columns)
    assert sorted(source.read(start, end)["id"]) == sorted(inside["id"])


@pytest.mark.parametrize("layout", ["in-order", "shuffled", "row-groups", "cached"])
def test_a_bound_between_two_ticks_of_a_millisecond_time_column_cuts_as_pandas_does(
    tmp_path: Path, layout: str
) -> None:
    """A time column in milliseconds (as many writers store it) and window bounds of a clock in
    microseconds: a row at 12:00:10.000 is before a window that starts at 12:00:10.0007 and inside
    one that ends at 12:00:50.0007, on every path (slice, mask, row-group filter, cached copy), as
    the exact comparison says."""
    from controller.adapters.filecache import FileCache

    n = 120
    stamps = pd.date_range("2026-01-01 12:00:00", periods=n, freq="s", tz="UTC").as_unit("ms")
    rows = pd.DataFrame({"timestamp": stamps, "x": np.arange(n, dtype=np.float64)})
    if layout == "shuffled":
        rows = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    rows.to_parquet(tmp_path / "rows.parquet", row_group_size=16 if layout == "row-groups" else None)
    cache = FileCache(tmp_path / "cache", 64 << 20) if layout == "cached" else None
    source = FileDataSource(str(tmp_path / "rows.parquet"), "timestamp", cache=cache)
    start = stamps[10].to_pydatetime() + timedelta(microseconds=700)
    end = stamps[50].to_pydatetime() + timedelta(microseconds=700)
    for _ in range(2 if cache else 1):  # with a cache: the decoding read, then the mapped copy
        got = source.read(start, end)
        assert sorted(got["x"]) == list(range(11, 51)), layout  # 12:00:10 out, 12:00:50 in
