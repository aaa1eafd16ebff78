"""Where production rows and their late labels come from: Parquet/CSV files or a SQL table.

A :class:`DataSource` returns the rows whose time column falls in ``[start, end)``. A
:class:`Window` is what one check sees: the current rows and, joined by the id column, the labels
that have arrived (older than the label delay), so realized performance uses only what a real
system would know at that time.

Files are local paths or objects in a store (``s3://``, ``gs://``, ``abfs://`` URLs, see
:mod:`controller.adapters.objectstore`). A folder or prefix may be a dataset partitioned by day,
hive style (``dt=2026-11-30/``) or one folder per day (``2026-11-30/`` or ``2026/11/30/``): a read
of ``[start, end)`` opens only the days that overlap it (a day's folder holds the rows whose time
falls on that UTC day), and in each file only the row groups in range. Files whose columns differ
(a column added, a type widened) are joined into one frame, and the differences are listed in
the frame's ``attrs["schema_changes"]``.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from controller.adapters.filecache import CACHE_MAX_ROWS, FileCache, Slot
from controller.adapters.objectstore import (
    WHOLE_OBJECT_BYTES,
    StoreObject,
    errors,
    is_remote,
    is_url,
    local_path,
    shown,
    store_for,
)
from controller.config import DataConfig, FileSource, ModelConfig, SqlSource, relative_to_config
from controller.errors import DataError, RetryLater

SMALL_FILE_ROWS = 100_000
"""Up to this many rows, a Parquet file is decoded without pyarrow's thread pool (about 5% less CPU
for a check's window of 10,000 rows; a worker's other processes use the other cores anyway)."""


class DataSource(Protocol):
    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame: ...


@dataclass(frozen=True)
class DataFile:
    """One file of a source: a local path or a listed object, and the UTC day its folder says it
    holds (None: any)."""

    name: str
    path: Path | None = None
    obj: StoreObject | None = None
    endpoint_url: str | None = None
    day: date | None = None

    @staticmethod
    def of(location: str | Path | DataFile) -> DataFile:
        if isinstance(location, DataFile):
            return location
        if is_remote(str(location)) and isinstance(location, str):
            objects = store_for(location).list(location)
            if len(objects) != 1:
                raise DataError(f"{shown(location)}: one object expected, found {len(objects)}")
            return DataFile(objects[0].url, obj=objects[0])
        path = local_path(location) if isinstance(location, str) else location
        return DataFile(str(path), path=path)

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower()

    @contextlib.contextmanager
    def opened(self) -> Iterator[Any]:
        """What pyarrow reads: the path; a remote object's bytes (one request); or, for a large
        object, a file that reads the ranges asked for (its footer, the row groups in range)."""
        if self.obj is None:
            assert self.path is not None
            yield self.path
            return
        store = store_for(self.obj.url, self.endpoint_url)
        if self.obj.size <= WHOLE_OBJECT_BYTES:
            yield pa.BufferReader(store.read(self.obj))
            return
        with store.open(self.obj) as handle:
            yield handle


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
    path: str | Path | DataFile,
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
    f = DataFile.of(path)
    if f.path is not None and not f.path.is_file():
        raise DataError(f"{f.name}: file not found")
    kind = _kind(f, fmt)
    try:
        if kind == "csv":
            with f.opened() as source:
                return pd.read_csv(source if f.obj is None else io.BytesIO(source.read())), False
        table, cut = _parquet_table(f, time_column, start, end, text_as_categories, cache)
        return _pandas_of(table, split=text_as_categories is not None), cut
    except Exception as exc:  # pandas raises many types; all mean "cannot read this file"
        raise _unreadable(f, kind, exc) from None


def _kind(f: DataFile | Path, fmt: str) -> str:
    return fmt if fmt != "auto" else ("csv" if f.suffix.lower() in {".csv", ".txt"} else "parquet")


def _unreadable(f: DataFile, kind: str, exc: Exception) -> Exception:
    """The one-line error of a file that could not be read: the store's own (an outage, a denied
    read) when it came from the store, else that the file is not readable as ``kind``."""
    if isinstance(exc, DataError | RetryLater):
        return exc
    if f.obj is not None:
        try:
            with errors(f.obj.url):
                raise exc
        except RetryLater as outage:
            return outage
        except DataError:
            pass
    where = shown(f.name) if is_url(f.name) else f.name
    return DataError(f"{where}: cannot read as {kind} ({type(exc).__name__}: {str(exc)[:120]})")


def _parquet_table(
    f: DataFile,
    time_column: str | None,
    start: datetime | None,
    end: datetime | None,
    text_as_categories: Collection[str] | None,
    cache: FileCache | None,
) -> tuple[pa.Table, bool]:
    """The rows of a Parquet file as an Arrow table, and whether they are cut to ``[start, end)``
    (not when its time column is not a timestamp)."""
    slot: Slot | None = None
    if cache is not None:
        if f.obj is not None:
            copy, slot = cache.lookup_object(f.obj.url, f.obj.version, f.obj.size, text_as_categories)
        else:
            assert f.path is not None
            copy, slot = cache.lookup(f.path, text_as_categories)
        if copy is not None:
            return _cut_table(copy, time_column, start, end)
    with f.opened() as source:
        return _decode(source, time_column, start, end, text_as_categories, cache, slot)


def _decode(
    p: Any,
    time_column: str | None,
    start: datetime | None,
    end: datetime | None,
    text_as_categories: Collection[str] | None,
    cache: FileCache | None,
    slot: Slot | None,
) -> tuple[pa.Table, bool]:
    """:func:`_parquet_table` of an opened file (a path, a buffer or a file object)."""
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


def read_frame(location: str | Path, what: str) -> pd.DataFrame:
    """A Parquet or CSV file (a path, or a URL of one object) as a DataFrame, or a one-line DataError."""
    from controller.adapters.objectstore import local_copy

    with local_copy(location, what) as path:
        return _read_frame(path, what, shown(str(location)) if is_url(str(location)) else str(location))


def _read_frame(path: Path, what: str, name: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{what} file not found: {name}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"cannot read {what} file {name}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    raise DataError(f"{what} file {name}: unknown format {suffix!r} (use .parquet or .csv)")


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


_DATA_SUFFIXES = {".parquet", ".pq", ".csv", ".txt"}
_GLOB = re.compile(r"[*?\[]")
_DAY = re.compile(r"(?:[^=/]+=)?(\d{4})-?(\d{2})-?(\d{2})")
_NUMBER = re.compile(r"(?:[^=/]+=)?(\d{1,4})")


def day_of(folders: str) -> date | None:
    """The UTC day a file's folders (relative to the dataset's root) say it holds: a hive
    partition (``dt=2026-11-30``), a folder per day (``2026-11-30``, ``20261130``) or one per year,
    month and day (``2026/11/30``, ``year=2026/month=11/day=30``). None when they name no day.

    >>> day_of("dt=2026-11-30"), day_of("2026/11/30/hour=05"), day_of("region=eu"), day_of("")
    (datetime.date(2026, 11, 30), datetime.date(2026, 11, 30), None, None)
    """
    parts = [p for p in folders.split("/") if p]
    for i, part in enumerate(parts):
        whole = _DAY.fullmatch(part)
        if whole is not None:
            with contextlib.suppress(ValueError):
                return date(*(int(g) for g in whole.groups()))
        numbers = [_NUMBER.fullmatch(x) for x in parts[i : i + 3]]
        if len(numbers) == 3 and all(numbers) and len(numbers[0].group(1)) == 4:  # type: ignore[union-attr]
            with contextlib.suppress(ValueError):
                return date(*(int(m.group(1)) for m in numbers))  # type: ignore[union-attr]
    return None


def _root_of(pattern: str) -> str:
    """The part of a path or glob before its first folder with a wildcard."""
    parts = pattern.split("/")
    fixed = next((i for i, p in enumerate(parts) if _GLOB.search(p)), len(parts))
    return "/".join(parts[:fixed])


def _folders(name: str, root: str) -> str:
    """The folders of ``name`` below ``root`` ("" when it is not below it)."""
    root = root.rstrip("/") + "/"
    return name[len(root) :].rpartition("/")[0] if name.startswith(root) else ""


def _overlaps(day: date | None, start: datetime | None, end: datetime | None) -> bool:
    if day is None:
        return True
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (end is None or first < _aware(end)) and (start is None or first + timedelta(days=1) > _aware(start))


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass
class FileDataSource:
    """Rows from every file matching ``pattern``: a file, a folder, a glob, or their URLs in an
    object store; a folder or prefix may hold a dataset partitioned by day (module docstring)."""

    pattern: str
    time_column: str
    fmt: str = "auto"
    text_as_categories: Collection[str] | None = None
    """Read Parquet text columns as categoricals, but these (see :func:`_read_file`); None: as strings."""
    cache: FileCache | None = None
    """The machine's decoded copies of Parquet files (:mod:`controller.adapters.filecache`); None: decode every read."""
    endpoint_url: str | None = None
    """An S3-compatible store's endpoint (None: the cloud's own, or ``AWS_ENDPOINT_URL``)."""

    def files(self) -> list[DataFile]:
        """Every data file of the source, with the day its folder names (partitions)."""
        if is_remote(self.pattern):
            return self._objects()
        pattern = str(local_path(self.pattern)) if is_url(self.pattern) else self.pattern
        p = Path(pattern)
        if p.is_dir():
            root = str(p)
            found = sorted(
                Path(folder) / name
                for folder, _, names in os.walk(p)
                for name in names
                if Path(name).suffix.lower() in _DATA_SUFFIXES - {".txt"} and not name.startswith(("_", "."))
            )
        else:
            root = _root_of(pattern)
            found = sorted(Path(x) for x in glob.glob(pattern) if Path(x).is_file())
        if not found:
            raise DataError(f"{self.pattern}: no data files found")
        return [DataFile(str(f), path=f, day=day_of(_folders(str(f), root))) for f in found]

    def _objects(self) -> list[DataFile]:
        store = store_for(self.pattern, self.endpoint_url)
        objects = store.list(self.pattern)
        root = _root_of(f"{store.scheme}://{store.fs._strip_protocol(self.pattern)}")
        if len(objects) > 1 and self.fmt == "auto":
            objects = [o for o in objects if Path(o.name).suffix.lower() in _DATA_SUFFIXES]
            if not objects:
                raise DataError(f"{shown(self.pattern)}: no .parquet or .csv objects found")
        endpoint = self.endpoint_url
        return [DataFile(o.url, obj=o, endpoint_url=endpoint, day=day_of(_folders(o.url, root))) for o in objects]

    def files_for(self, start: datetime | None, end: datetime | None) -> list[DataFile]:
        """The files a read of ``[start, end)`` opens: every file of a day that overlaps it, and
        every file whose folders name no day."""
        return [f for f in self.files() if _overlaps(f.day, start, end)]

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        files = self.files_for(start, end)
        if not files:
            return self._empty(start, end)
        return self._read(files, start, end)

    def read_since(self, day_from: datetime) -> pd.DataFrame:
        """Every row of the files of the days from ``day_from`` on, and of files that name no day,
        without a time filter: the labels of a window's rows (a label arrives on or after the
        day of its row, so earlier days cannot hold one; label files need no time column)."""
        files = self.files_for(day_from, None)
        return self._read(files or self.files()[-1:], None, None)

    def _read(self, files: list[DataFile], start: datetime | None, end: datetime | None) -> pd.DataFrame:
        if len(files) > 1:
            joined = self._joined(files, start, end)
            if joined is not None:
                return joined
        def frame_of(f: DataFile) -> tuple[pd.DataFrame, bool]:
            return _read_file(f, self.fmt, self.time_column, start, end, self.text_as_categories, self.cache)

        parts = []
        read = _each(files, frame_of) if _any_remote(files) else [frame_of(f) for f in files]
        for f, (df, cut) in zip(files, read, strict=True):
            parts.append(df if cut else _in_range(df, self.time_column, start, end, f.name))
        if (
            len(parts) == 1
            and isinstance(parts[0].index, pd.RangeIndex)
            and parts[0].index.start == 0
            and parts[0].index.step == 1
        ):
            return parts[0]  # already what concat would make of it
        frame = pd.concat(parts, ignore_index=True)
        schemas = [pa.Schema.from_pandas(df, preserve_index=False) for df in parts]
        changes = schema_changes(list(zip(files, schemas, strict=True)))
        if changes:
            frame.attrs["schema_changes"] = changes
        return frame

    def _empty(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """No day of the dataset overlaps the window: its columns (from the newest file), no rows."""
        newest = self.files()[-1]
        df, cut = _read_file(newest, self.fmt, self.time_column, start, end, self.text_as_categories, self.cache)
        return (df if cut else _in_range(df, self.time_column, start, end, newest.name)).iloc[:0]

    def _joined(self, files: list[DataFile], start: datetime | None, end: datetime | None) -> pd.DataFrame | None:
        """Several Parquet files, each cut to ``[start, end)``, joined as Arrow tables and made
        pandas once (text dictionaries merged by pyarrow): a window of many files (say, one an
        hour) pays one conversion, not one per file and a concat. None when a file is not Parquet
        or is not cut by time, a file keeps a pandas index as a column, or the files' columns
        do not join (then pandas joins them)."""
        if any(_kind(f, self.fmt) != "parquet" for f in files):
            return None
        def table_of(f: DataFile) -> tuple[pa.Table, bool]:
            try:
                return _parquet_table(f, self.time_column, start, end, self.text_as_categories, self.cache)
            except Exception as exc:  # as _read_file says it
                raise _unreadable(f, "parquet", exc) from None

        tables = []
        read = _each(files, table_of) if _any_remote(files) else [table_of(f) for f in files]
        for table, cut in read:
            if not cut or _stored_index(table):
                return None
            tables.append(table)
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowException, NotImplementedError):
            return None
        frame = _pandas_of(table, split=self.text_as_categories is not None)
        changes = schema_changes([(f, t.schema) for f, t in zip(files, tables, strict=True)])
        if changes:
            frame.attrs["schema_changes"] = changes
        return frame


FETCHES = 8
"""Objects of a store a window reads at once: each is a round trip or more, mostly waiting."""

T = TypeVar("T")


def _any_remote(files: Sequence[DataFile]) -> bool:
    return len(files) > 1 and any(f.obj is not None for f in files)


def _each(files: Sequence[DataFile], read: Callable[[DataFile], T]) -> list[T]:
    """``read`` of every file, up to :data:`FETCHES` at once, in the files' order; the first error
    (in that order) is raised as it would have been one file after another."""
    with ThreadPoolExecutor(max_workers=min(FETCHES, len(files))) as pool:
        return list(pool.map(read, files))


def schema_changes(schemas: list[tuple[DataFile, pa.Schema]]) -> list[str]:
    """How the files' columns differ, one sentence per column (empty when they agree): a column
    missing from some files (its rows there are null), or of another type in some (widened,
    or made text when the types do not join).

    >>> a, b = DataFile("dt=2026-11-29/a.parquet"), DataFile("dt=2026-11-30/b.parquet")
    >>> older, newer = pa.schema([("x", pa.int32())]), pa.schema([("x", pa.int64()), ("y", pa.string())])
    >>> for change in schema_changes([(a, older), (b, newer)]):
    ...     print(change)
    x: int32 in dt=2026-11-29/a.parquet, int64 from dt=2026-11-30/b.parquet
    y: missing in 1 of 2 files (null there), first dt=2026-11-29/a.parquet
    """
    out = []
    names = list(dict.fromkeys(n for _, s in schemas for n in s.names))
    for name in names:
        missing = [f for f, s in schemas if name not in s.names]
        if missing:
            first = missing[0].name
            out.append(f"{name}: missing in {len(missing)} of {len(schemas)} files (null there), first {first}")
        types = [(f, s.field(name).type) for f, s in schemas if name in s.names]
        # dictionary-encoded text (how a check reads text) is still text
        plain = [(f, t.value_type if pa.types.is_dictionary(t) else t) for f, t in types]
        changed = [(f, t) for (f, t), (_, before) in zip(plain[1:], plain, strict=False) if t != before]
        if changed:
            f0, t0 = plain[0]
            steps = ", ".join(f"{t} from {f.name}" for f, t in changed)
            out.append(f"{name}: {t0} in {f0.name}, {steps}")
    return out


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
        path = spec.path if is_url(spec.path) else str(relative_to_config(spec.path, source_file))
        return FileDataSource(path, time_column, spec.format, text_as_categories, cache, spec.endpoint_url)
    return SqlDataSource(spec.url, time_column, spec.table, spec.query)


@dataclass(frozen=True)
class Window:
    """The rows one check sees, with the labels that have arrived joined on."""

    rows: pd.DataFrame
    start: datetime
    end: datetime
    label_column: str
    n_labeled: int
    schema_changes: tuple[str, ...] = ()
    """How the columns of the files read differ (see :func:`schema_changes`)."""

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
    changes = tuple(rows.attrs.get("schema_changes", ()))
    if not (isinstance(rows.index, pd.RangeIndex) and rows.index.start == 0 and rows.index.step == 1):
        rows = rows.reset_index(drop=True)
    label = data.label_column
    if data.labels is not None:
        label_source = make_source(data.labels, data.time_column, model.source_file, cache=cache)
        # a dataset of labels partitioned by day: only the days from the window's start on
        labels = label_source.read_since(start) if isinstance(label_source, FileDataSource) else label_source.read()
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
    return Window(rows, start, end, label, n_labeled, changes)
