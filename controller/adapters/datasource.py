"""Where production rows and their late labels come from: Parquet/CSV files or a SQL table.

A :class:`DataSource` returns the rows whose time column falls in ``[start, end)``. A
:class:`Window` is what one check sees: the current rows and, joined by the id column, the labels
that have arrived (older than the label delay), so realized performance uses only what a real
system would know at that time.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from controller.adapters.filecache import CACHE_MAX_ROWS, FileCache
from controller.config import DataConfig, FileSource, ModelConfig, SqlSource, relative_to_config
from controller.errors import DataError

SMALL_FILE_ROWS = 100_000
"""Up to this many rows, a Parquet file is decoded without pyarrow's thread pool (about 5% less CPU
for a check's window of 10,000 rows; a worker's other processes use the other cores anyway)."""


class DataSource(Protocol):
    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame: ...


def read_table(
    path: str | Path,
    fmt: str = "auto",
    time_column: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """One Parquet or CSV file; a clear DataError when it cannot be read.

    With a ``time_column`` stored as a Parquet timestamp, only the rows in ``[start, end)`` are
    converted to pandas (pyarrow skips row groups outside the range and filters the rest); other
    files are read whole and cut by :func:`_in_range`.
    """
    return _read_file(path, fmt, time_column, start, end)[0]


def _read_file(
    path: str | Path,
    fmt: str = "auto",
    time_column: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    text_as_categories: Collection[str] | None = None,
    cache: FileCache | None = None,
) -> tuple[pd.DataFrame, bool]:
    """:func:`read_table`, and whether the rows are already cut to ``[start, end)``.

    With ``text_as_categories`` (the columns to leave as they are), a Parquet file's other text
    columns are read as dictionaries, i.e. pandas categoricals: a text column decodes and counts
    by its few distinct values instead of one Python string per row. That is how a check reads.

    With a ``cache``, a Parquet file is read whole, decoded once per machine and memory-mapped
    from the cache's copy afterwards (see :mod:`controller.adapters.filecache`)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    kind = _kind(p, fmt)
    try:
        if kind == "csv":
            return pd.read_csv(p), False
        table, cut = _parquet_table(p, time_column, start, end, text_as_categories, cache)
        return _pandas_of(table, split=text_as_categories is not None), cut
    except Exception as exc:  # pandas raises many types; all mean "cannot read this file"
        raise _unreadable(p, kind, exc) from None


def _kind(path: Path, fmt: str) -> str:
    return fmt if fmt != "auto" else ("csv" if path.suffix.lower() in {".csv", ".txt"} else "parquet")


def _unreadable(path: Path, kind: str, exc: Exception) -> DataError:
    return DataError(f"{path}: cannot read as {kind} ({type(exc).__name__}: {str(exc)[:120]})")


def _parquet_table(
    p: Path,
    time_column: str | None,
    start: datetime | None,
    end: datetime | None,
    text_as_categories: Collection[str] | None,
    cache: FileCache | None,
) -> tuple[pa.Table, bool]:
    """The rows of a Parquet file as an Arrow table, and whether they are cut to ``[start, end)``
    (not when its time column is not a timestamp)."""
    slot = None
    if cache is not None:
        copy, slot = cache.lookup(p, text_as_categories)
        if copy is not None:
            return _cut_table(copy, time_column, start, end)
    parquet = pq.ParquetFile(p)
    text = [] if text_as_categories is None else _text_columns(parquet.schema_arrow, exclude=text_as_categories)
    if text:
        parquet = pq.ParquetFile(p, metadata=parquet.metadata, read_dictionary=text)
    # A small file is decoded on this thread: a thread pool costs more than it saves there.
    threads = parquet.metadata.num_rows > SMALL_FILE_ROWS
    if cache is not None and slot is not None and parquet.metadata.num_rows <= CACHE_MAX_ROWS:
        table = parquet.read(use_threads=threads)
        cache.keep(slot, table)
        return _cut_table(table, time_column, start, end)
    filters = _time_filters(parquet.schema_arrow, time_column, start, end) if time_column else None
    if filters is None:
        return parquet.read(use_threads=threads), False
    if parquet.metadata.num_row_groups == 1 and time_column is not None:
        # one row group: nothing to skip; a mask on the decoded table costs less than a dataset scan
        table = parquet.read(use_threads=threads)
        in_order = _slice_in_order(table, time_column, start, end)
        if in_order is not None:
            table = in_order
        elif not _all_within(parquet, time_column, start, end):
            table = _cut(table, time_column, start, end)
        return table, True
    # several row groups and no copy to map: pyarrow's dataset scan skips the groups out of range
    return pq.read_table(p, filters=filters, use_threads=threads, **({"read_dictionary": text} if text else {})), True


def _cut_table(
    table: pa.Table, time_column: str | None, start: datetime | None, end: datetime | None
) -> tuple[pa.Table, bool]:
    """A whole file's table cut to ``[start, end)`` when its time column is a timestamp (and
    whether it was cut)."""
    if time_column is None or _time_filters(table.schema, time_column, start, end) is None:
        return table, False
    in_order = _slice_in_order(table, time_column, start, end)
    return (in_order if in_order is not None else _cut(table, time_column, start, end)), True


def _pandas_of(table: pa.Table, split: bool) -> pd.DataFrame:
    """For a check (``split``), each column keeps its own block: no copy of every number into one
    2-D block (which a reader of rows, such as a model's training, wants instead)."""
    threads = table.num_rows > SMALL_FILE_ROWS
    return table.to_pandas(use_threads=threads, split_blocks=split)


def _text_columns(schema: pa.Schema, exclude: Collection[str]) -> list[str]:
    """The plain text columns of a Parquet schema, but those in ``exclude``."""
    return [
        f.name
        for f in schema
        if f.name not in exclude and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    ]


def _all_within(parquet: pq.ParquetFile, column: str, start: datetime | None, end: datetime | None) -> bool:
    """Whether the file's own statistics say every row of its one row group has a time in
    ``[start, end)`` (no null time), so there is nothing to cut. False when they do not say."""
    try:
        stats = parquet.metadata.row_group(0).column(parquet.schema_arrow.get_field_index(column)).statistics
        if stats is None or not stats.has_min_max or stats.null_count != 0:
            return False
        lo, hi = (pd.Timestamp(v) for v in (stats.min, stats.max))
        lo, hi = (v.tz_localize("UTC") if v.tzinfo is None else v for v in (lo, hi))
        return (start is None or lo >= start) and (end is None or hi < end)
    except Exception:  # statistics of another type, or none: cut the rows one by one
        return False


def _slice_in_order(table: pa.Table, column: str, start: datetime | None, end: datetime | None) -> pa.Table | None:
    """:func:`_cut` of a table whose times are in order, without nulls (as files written over time
    usually are): two binary searches give one slice that shares the table's memory (the table
    itself when every row is in). None for other tables."""
    times = table.column(column)
    if times.null_count or times.num_chunks != 1 or not pa.types.is_timestamp(times.type):
        return None
    ticks = times.chunk(0).view(pa.int64()).to_numpy(zero_copy_only=True)
    if not bool(np.all(ticks[1:] >= ticks[:-1])):
        return None

    def first_at(when: datetime) -> int:  # the first row at or after ``when``
        return int(np.searchsorted(ticks, _ticks_at_or_after(when, times.type), "left"))

    lo = 0 if start is None else first_at(start)
    hi = len(ticks) if end is None else first_at(end)
    return table if (lo, hi) == (0, len(ticks)) else table.slice(lo, max(hi - lo, 0))


def _cut(table: pa.Table, column: str, start: datetime | None, end: datetime | None) -> pa.Table:
    """The rows of ``table`` with ``start <= column < end`` (a null time is out), as ``_time_filters``."""
    times = table.column(column)
    masks = []
    if start is not None:
        masks.append(pc.greater_equal(times, _bound(start, times.type)))
    if end is not None:
        masks.append(pc.less(times, _bound(end, times.type)))
    mask = masks[0] if len(masks) == 1 else pc.and_(masks[0], masks[1])
    if pc.all(mask, skip_nulls=False).as_py() is True:
        return table  # every row is in: no copy
    return table.filter(mask)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _ticks_at_or_after(when: datetime, type_: pa.TimestampType) -> int:
    """The first tick of a timestamp column's unit at or after ``when`` (a naive ``when`` is UTC,
    as pyarrow reads it): for a column's whole ticks ``t``, ``t >= when`` and ``t < when`` are
    ``t >= this`` and ``t < this``. (pyarrow's own conversion truncates, so a bound of
    12:00:00.0007 on a column in milliseconds would let a row of 12:00:00.000 into a window that
    starts after it.)"""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    per_second = _TICKS_PER_SECOND[type_.unit]
    if per_second >= 1_000_000:
        return micros * (per_second // 1_000_000)
    return -(-micros // (1_000_000 // per_second))  # rounded up


def _bound(when: datetime, type_: pa.TimestampType) -> pa.Scalar:
    """:func:`_ticks_at_or_after` as a scalar of the column's type."""
    return pa.scalar(_ticks_at_or_after(when, type_), type=type_)


def _time_filters(schema: pa.Schema, column: str, start: datetime | None, end: datetime | None) -> Any:
    """A pyarrow filter for ``start <= column < end``, or None when the column is not a timestamp.

    A naive timestamp column holds UTC (as ``pd.to_datetime(..., utc=True)`` reads it); pyarrow
    turns an aware bound into that column's UTC clock.
    """
    if start is None and end is None:
        return None
    field = schema.field(column) if column in schema.names else None
    if (
        field is None
        or not pa.types.is_timestamp(field.type)
        or any(b is not None and b.tzinfo is None for b in (start, end))
    ):
        return None
    col = pc.field(column)
    bounds = []
    if start is not None:
        bounds.append(col >= _bound(start, field.type))
    if end is not None:
        bounds.append(col < _bound(end, field.type))
    return bounds[0] if len(bounds) == 1 else bounds[0] & bounds[1]


def read_frame(path: Path, what: str) -> pd.DataFrame:
    """A Parquet or CSV file as a DataFrame, or a one-line DataError."""
    if not path.exists():
        raise DataError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"cannot read {what} file {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    raise DataError(f"{what} file {path}: unknown format {suffix!r} (use .parquet or .csv)")


def require_columns(df: pd.DataFrame, columns: list[str] | tuple[str, ...], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns[:12]))
        raise DataError(f"{where}: missing column(s) {', '.join(missing)} (has: {have})")


def _in_range(
    df: pd.DataFrame, time_column: str, start: datetime | None, end: datetime | None, where: str
) -> pd.DataFrame:
    if start is None and end is None:
        return df
    require_columns(df, [time_column], where)
    ts = utc_times(df[time_column])
    mask = pd.Series(True, index=df.index)
    if start is not None:
        mask &= ts >= pd.Timestamp(start)
    if end is not None:
        mask &= ts < pd.Timestamp(end)
    return df.loc[mask]


def utc_times(values: pd.Series) -> pd.Series:
    """``pd.to_datetime(values, utc=True, errors="coerce")``, without re-parsing a datetime column."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    return pd.to_datetime(values, utc=True, errors="coerce")


@dataclass
class FileDataSource:
    """Rows from every file matching ``pattern`` (a file, a folder or a glob)."""

    pattern: str
    time_column: str
    fmt: str = "auto"
    text_as_categories: Collection[str] | None = None
    """Read Parquet text columns as categoricals, but these (see :func:`_read_file`); None: as strings."""
    cache: FileCache | None = None
    """The machine's decoded copies of Parquet files (:mod:`controller.adapters.filecache`); None: decode every read."""

    def files(self) -> list[Path]:
        p = Path(self.pattern)
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.suffix.lower() in {".parquet", ".csv", ".pq"})
        else:
            found = sorted(Path(x) for x in glob.glob(self.pattern))
        if not found:
            raise DataError(f"{self.pattern}: no data files found")
        return found

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        files = self.files()
        if len(files) > 1:
            joined = self._joined(files, start, end)
            if joined is not None:
                return joined
        parts = []
        for f in files:
            df, cut = _read_file(f, self.fmt, self.time_column, start, end, self.text_as_categories, self.cache)
            parts.append(df if cut else _in_range(df, self.time_column, start, end, str(f)))
        if (
            len(parts) == 1
            and isinstance(parts[0].index, pd.RangeIndex)
            and parts[0].index.start == 0
            and parts[0].index.step == 1
        ):
            return parts[0]  # already what concat would make of it
        return pd.concat(parts, ignore_index=True)

    def _joined(self, files: list[Path], start: datetime | None, end: datetime | None) -> pd.DataFrame | None:
        """Several Parquet files, each cut to ``[start, end)``, joined as Arrow tables and made
        pandas once (text dictionaries merged by pyarrow): a window of many files (say, one an
        hour) pays one conversion, not one per file and a concat. None when a file is not Parquet
        or is not cut by time, a file keeps a pandas index as a column, or the files' columns
        do not join (then pandas joins them)."""
        if any(_kind(f, self.fmt) != "parquet" for f in files):
            return None
        tables = []
        for f in files:
            try:
                got = _parquet_table(f, self.time_column, start, end, self.text_as_categories, self.cache)
            except Exception as exc:  # as _read_file says it
                raise _unreadable(f, "parquet", exc) from None
            table, cut = got
            if not cut or _stored_index(table):
                return None
            tables.append(table)
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowException, NotImplementedError):
            return None
        return _pandas_of(table, split=self.text_as_categories is not None)


def _stored_index(table: pa.Table) -> bool:
    """Whether pandas stored an index of the file's as a column (a range index is stored as metadata)."""
    meta = table.schema.pandas_metadata
    return bool(meta) and any(isinstance(c, str) for c in meta.get("index_columns", []))


@dataclass
class SqlDataSource:
    """Rows from a table or query through any SQLAlchemy URL."""

    url: str
    time_column: str
    table: str | None = None
    query: str | None = None

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        engine = sa.create_engine(os.path.expandvars(self.url))
        try:
            with engine.connect() as conn:
                if self.table is not None:
                    t = sa.Table(self.table, sa.MetaData(), autoload_with=conn)
                    q = sa.select(t)
                    col = t.c.get(self.time_column)
                    if col is not None and start is not None:
                        q = q.where(col >= start.replace(tzinfo=None))
                    if col is not None and end is not None:
                        q = q.where(col < end.replace(tzinfo=None))
                    return pd.read_sql(q, conn)
                df = pd.read_sql(sa.text(self.query or ""), conn)
                return _in_range(df, self.time_column, start, end, "query")
        except sa.exc.SQLAlchemyError as exc:
            raise DataError(
                f"{self.table or 'query'} at {engine.url.render_as_string()}: {str(exc).splitlines()[0]}"
            ) from None
        finally:
            engine.dispose()


def make_source(
    spec: FileSource | SqlSource,
    time_column: str,
    source_file: str | None,
    text_as_categories: Collection[str] | None = None,
    cache: FileCache | None = None,
) -> DataSource:
    if isinstance(spec, FileSource):
        path = str(relative_to_config(spec.path, source_file))
        return FileDataSource(path, time_column, spec.format, text_as_categories, cache)
    return SqlDataSource(spec.url, time_column, spec.table, spec.query)


@dataclass(frozen=True)
class Window:
    """The rows one check sees, with the labels that have arrived joined on."""

    rows: pd.DataFrame
    start: datetime
    end: datetime
    label_column: str
    n_labeled: int

    @property
    def labeled(self) -> pd.DataFrame:
        return self.rows.loc[self.rows[self.label_column].notna()]

    @property
    def coverage(self) -> float:
        return self.n_labeled / len(self.rows) if len(self.rows) else 0.0


def _arrived(labels: pd.DataFrame, rows: pd.DataFrame, id_column: str, label: str) -> np.ndarray:
    """Each row's arrived label (missing where none arrived): a left join on the id, without
    copying every column of the window as a merge does. A label sent again: the last one counts.

    Labels whose ids increase, each once (written as they arrive), are found by binary search;
    anything else is joined through a hash index.
    """
    label_ids = labels[id_column].to_numpy()
    row_ids = rows[id_column].to_numpy()
    if (
        label_ids.dtype.kind in "iu"
        and row_ids.dtype.kind in "iu"
        and len(label_ids)
        and bool(np.all(label_ids[1:] > label_ids[:-1]))
    ):
        # a row without a label gets the missing value a hash join gives it
        at = np.minimum(np.searchsorted(label_ids, row_ids), len(label_ids) - 1)
        found = label_ids[at] == row_ids
        values = pd.Series(labels[label].to_numpy())
        return values.to_numpy()[at] if found.all() else values.reindex(np.where(found, at, -1)).to_numpy()
    ids = pd.Index(label_ids)
    if not ids.is_unique:
        labels = labels.drop_duplicates(id_column, keep="last")
        ids = pd.Index(labels[id_column].to_numpy())
    return pd.Series(labels[label].to_numpy(), index=ids).reindex(row_ids).to_numpy()


def load_window(
    model: ModelConfig,
    end: datetime,
    hours: float | None = None,
    categories: bool = False,
    cache: FileCache | None = None,
) -> Window:
    """The model's current window ending at ``end``, with arrived labels joined by id.

    With ``categories``, the Parquet text columns other than the id, time, label and prediction
    columns are read as pandas categoricals (what a check reads: the detectors and the scorer take
    them as they take strings, and they cost a fraction to decode and count). With a ``cache``,
    the Parquet files of the rows and the labels are decoded once per machine and version of the
    file (see :mod:`controller.adapters.filecache`)."""
    data: DataConfig = model.data
    start = end - timedelta(hours=hours or data.window_hours)
    plain = {data.id_column, data.time_column, data.label_column, model.prediction_column, *model.proba_columns}
    source = make_source(data.source, data.time_column, model.source_file, plain if categories else None, cache)
    rows = source.read(start, end)
    if not (isinstance(rows.index, pd.RangeIndex) and rows.index.start == 0 and rows.index.step == 1):
        rows = rows.reset_index(drop=True)
    label = data.label_column
    if data.labels is not None:
        labels = make_source(data.labels, data.time_column, model.source_file, cache=cache).read()
        require_columns(labels, [data.id_column, label], f"labels of {model.name}")
        if len(rows):
            require_columns(rows, [data.id_column], f"data of {model.name}")
        if label in rows.columns:
            rows = rows.drop(columns=[label])
        rows[label] = _arrived(labels, rows, data.id_column, label)
    elif label not in rows.columns:
        rows[label] = pd.NA
    if data.label_delay_hours > 0 and len(rows):
        ts = utc_times(rows[data.time_column])
        too_young = ts > pd.Timestamp(end - timedelta(hours=data.label_delay_hours))
        rows.loc[too_young, label] = pd.NA
    n_labeled = int(rows[label].notna().sum()) if len(rows) else 0
    return Window(rows, start, end, label, n_labeled)
