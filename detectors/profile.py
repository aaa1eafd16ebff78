"""Reference profiles: what a drift check keeps of the reference data, computed once per model.

A profile holds, per column: its kind (numerical or categorical), its dtype family (to notice a
changed type), its null count, and its distribution as sorted distinct values with counts.
Numerical columns with at most ``max_exact`` distinct values are kept exactly, which makes every
test give the same answer from the profile as from the raw data. Columns with more distinct
values are kept as a *binned sketch*: ``sketch_bins`` equal-width bins between the reference's
0.1% and 99.9% quantiles, each stored as (mean of its values, count), with the values outside
that range kept exactly. Every sketched value moves by less than one bin width, so the KS
statistic, the normed Wasserstein distance and the binned tests move by at most about
``1 / sketch_bins`` (see docs/drift.md for the measured differences).

Embeddings (:class:`~detectors.embeddings.EmbeddingProfile`: mean, per-component sketches and a
row sample) and free-text columns (:class:`~detectors.text.TextProfile`: a sample of texts, the
vocabulary and the descriptors' distributions) are kept beside the columns; their source columns
are not profiled as columns.

The serialized form (:meth:`ReferenceProfile.to_bytes`) is deterministic: the same data gives
the same bytes, so :attr:`ReferenceProfile.content_hash` identifies the content. Format 2 added
embeddings and text; format 1 files still load.

Errors: :class:`ProfileFormatError` (a ``ValueError``) for bytes that are not a profile or come
from an unknown format version.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from detectors.embeddings import DEFAULT_SAMPLE_ROWS as EMBEDDING_SAMPLE_ROWS
from detectors.embeddings import (
    EmbeddingProfile,
    build_embedding_profile,
    embedding_matrix,
    looks_like_vectors,
    resolve_columns,
)
from detectors.sketch import sketch_sample
from detectors.stattests.base import (
    Kind,
    Sample,
    counts_of,
    factorize_labels,
    finite_floats,
    is_integer_column,
    label_counts,
    plain_label,
)
from detectors.text import TextProfile, build_text_profile, looks_like_text

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_MAGIC = b"RCPROFILE\x00"
DEFAULT_MAX_EXACT = 20_000
DEFAULT_SKETCH_BINS = 1 << 14
DEFAULT_SAMPLE_ROWS = 2000

Family = Literal["numeric", "bool", "string", "datetime", "other"]


class ProfileFormatError(ValueError):
    """Bytes that are not a reference profile, or of an unknown format version."""


def dtype_family(series: pd.Series) -> Family:
    """The coarse type of a column; a change of family between windows is ``type_changed``.

    >>> dtype_family(pd.Series([1, 2])), dtype_family(pd.Series([1.5])), dtype_family(pd.Series(["a"]))
    ('numeric', 'numeric', 'string')
    """
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in _NUMPY_FAMILIES:
        return _NUMPY_FAMILIES[dtype.kind]
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return dtype_family(pd.Series(dtype.categories))
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        found, first = _first_non_null(series)
        return value_family(first) if found else "other"
    return "other"


# numpy dtype kinds whose family the dtype alone decides (what the pandas checks below conclude)
_NUMPY_FAMILIES: dict[str, Family] = {"b": "bool", "i": "numeric", "u": "numeric", "f": "numeric", "c": "numeric"}


def value_family(value: Any) -> Family:
    """The family of an object column, from its first non-null value."""
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.number):
        return "numeric"
    return "string"


def _first_non_null(series: pd.Series) -> tuple[bool, Any]:
    # look at the head first: a full null scan of a long object column is the slow part of a check
    for part in (series.iloc[:1024], series):
        mask = part.notna().to_numpy()
        if mask.any():
            return True, part.iloc[int(mask.argmax())]
    return False, None


def infer_kind(series: pd.Series, categorical: bool) -> Kind:
    """Numerical for numeric dtypes (booleans excluded), categorical otherwise or when asked."""
    return "categorical" if categorical else kind_of(dtype_family(series), series.dtype)


def kind_of(family: Family, dtype: Any) -> Kind:
    """Numerical for numbers in a numeric dtype; booleans and numbers held as objects are not."""
    return "numerical" if family == "numeric" and not pd.api.types.is_object_dtype(dtype) else "categorical"


class CurrentColumn:
    """One column of a current window, read the way the reference was: each figure is computed
    when first asked for and then kept, so every check of the window shares one reading.

    An object column is hashed once (``pd.factorize``), which gives its nulls, its first value
    (hence its family) and its category counts together.

    >>> col = CurrentColumn(pd.Series(["b", None, "a", "b"]))
    >>> col.n_null, col.family, col.labels.values.tolist(), col.labels.counts.tolist()
    (1, 'string', ['b', 'a'], [2, 1])
    """

    def __init__(self, series: pd.Series) -> None:
        self.series = series
        self.n_rows = len(series)

    @cached_property
    def factorized(self) -> tuple[np.ndarray, np.ndarray] | None:
        """An object column's ``pd.factorize``: codes (-1 for nulls) and labels; None for other
        dtypes and unhashable values. Kept, so a scorer encoding the same column reuses it."""
        return factorize_labels(self.series)

    @cached_property
    def _hashed(self) -> tuple[Sample, Family] | None:
        """An object column's categories and family, from its one factorization; None for other
        dtypes and unhashable values."""
        factorized = self.factorized
        if factorized is None:
            return None
        uniques = factorized[1]
        return Sample.from_labels(*counts_of(*factorized)), value_family(uniques[0]) if len(uniques) else "other"

    @cached_property
    def n_null(self) -> int:
        """Nulls as pandas counts them (infinities are values here)."""
        dtype = self.series.dtype
        kind = dtype.kind if isinstance(dtype, np.dtype) else ""
        if kind in ("b", "i", "u"):
            return 0
        if kind == "f":
            # every value finite (read anyway by both checks): no NaN to count
            return 0 if len(self.finite) == self.n_rows else int(np.isnan(self.series.to_numpy()).sum())
        if self._hashed is not None:
            return self.n_rows - self._hashed[0].n
        return int(self.series.isna().sum())

    @cached_property
    def family(self) -> Family:
        return self._hashed[1] if self._hashed is not None else dtype_family(self.series)

    @cached_property
    def inferred_kind(self) -> Kind:
        return kind_of(self.family, self.series.dtype)

    @cached_property
    def labels(self) -> Sample:
        """The non-null values as categories (``Sample.from_values(series, "categorical")``)."""
        return self._hashed[0] if self._hashed is not None else Sample.from_labels(*label_counts(self.series))

    @cached_property
    def finite(self) -> np.ndarray:
        """The finite values as float64, in row order."""
        return finite_floats(self.series)

    @property
    def numbers(self) -> Sample:
        """The finite values as numbers (``Sample.from_values(series, "numerical")``). Not kept:
        only the drift test reads it, once, and a window shared by several checks should not
        hold every column's sorted copy."""
        return Sample.from_numbers(self.finite, is_integer_column(self.series))


class ColumnsOf:
    """Some columns of a DataFrame, read in place: what the checks use of a frame (``columns``,
    ``len``, one column by name) without the copy that ``frame[columns]`` makes of every column.

    >>> view = ColumnsOf(pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}), ["x"])
    >>> list(view.columns), len(view), view["x"].tolist(), "id" in view.columns
    (['x'], 2, [0.5, 1.5], False)
    """

    def __init__(self, frame: pd.DataFrame, columns: Sequence[str]) -> None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"not in the frame: {missing}")
        self.source = frame
        self.columns = pd.Index(list(columns))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, name: str) -> pd.Series:
        if name not in self.columns:
            raise KeyError(name)
        return self.source[name]

    def to_frame(self) -> pd.DataFrame:
        """The columns as a DataFrame of their own (a copy)."""
        return self.source[list(self.columns)]


class CurrentWindow:
    """A current window and the readings of its columns, to pass to several checks.

    ``check_quality`` and ``detect_drift`` accept one in place of the DataFrame; handing both
    the same window reads each column once instead of twice. A check given a bare DataFrame
    reads it through a window that keeps nothing (``keep=False``): each column's arrays are
    freed before the next column is read, so the allocator reuses warm memory.
    """

    def __init__(self, frame: pd.DataFrame | ColumnsOf, *, keep: bool = True) -> None:
        self.frame = frame
        self.keep = keep
        self._columns: dict[str, CurrentColumn] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def dataframe(self) -> pd.DataFrame:
        """The window as a DataFrame (a copy of its columns when it is a :class:`ColumnsOf`)."""
        return self.frame if isinstance(self.frame, pd.DataFrame) else self.frame.to_frame()

    def factorized(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """:attr:`CurrentColumn.factorized` of a column of this window; None when it has none."""
        return self.column(name).factorized if name in self.frame.columns else None

    def column(self, name: str) -> CurrentColumn:
        if not self.keep:
            return CurrentColumn(self.frame[name])
        if name not in self._columns:
            self._columns[name] = CurrentColumn(self.frame[name])
        return self._columns[name]


def as_window(current: pd.DataFrame | CurrentWindow) -> CurrentWindow:
    return current if isinstance(current, CurrentWindow) else CurrentWindow(current, keep=False)


@dataclass(frozen=True, eq=False)
class ColumnProfile:
    """One column of a reference profile."""

    name: str
    kind: Kind
    family: Family
    n_rows: int
    n_null: int
    sample: Sample
    sketch: bool = False
    sketch_lo: float = 0.0
    sketch_hi: float = 0.0
    sketch_bins: int = 0

    @property
    def null_share(self) -> float:
        return self.n_null / self.n_rows if self.n_rows else 0.0

    @property
    def n_unique(self) -> int:
        return self.sample.n_unique


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """What a drift check needs of the reference data, built once by :func:`build_profile`.

    >>> df = pd.DataFrame({"x": [1.0, 2.0, 2.0, None], "city": ["a", "b", "a", "a"]})
    >>> p = build_profile(df, categorical=("city",))
    >>> p.n_rows, p.columns, p.kinds
    (4, ('x', 'city'), {'x': 'numerical', 'city': 'categorical'})
    >>> ReferenceProfile.from_bytes(p.to_bytes()).content_hash == p.content_hash
    True
    """

    n_rows: int
    column_profiles: tuple[ColumnProfile, ...]
    row_sample: pd.DataFrame | None = field(default=None, repr=False)
    embeddings: tuple[EmbeddingProfile, ...] = ()
    texts: tuple[TextProfile, ...] = ()
    order: tuple[str, ...] = ()
    _bytes: list[bytes] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.column_profiles)

    @property
    def all_columns(self) -> tuple[str, ...]:
        """Every reference column profiled, in the reference's order: the columns, and those read as
        embeddings and texts (a model's inputs, when its config does not list them)."""
        return self.order or self.columns

    @property
    def kinds(self) -> dict[str, Kind]:
        return {c.name: c.kind for c in self.column_profiles}

    @cached_property
    def _by_name(self) -> dict[str, ColumnProfile]:
        by_name: dict[str, ColumnProfile] = {}
        for c in self.column_profiles:
            by_name.setdefault(c.name, c)  # the first of a repeated name, as a scan would find
        return by_name

    def column(self, name: str) -> ColumnProfile:
        return self._by_name[name]

    def embedding(self, name: str) -> EmbeddingProfile:
        for e in self.embeddings:
            if e.name == name:
                return e
        raise KeyError(name)

    def text(self, column: str) -> TextProfile:
        for t in self.texts:
            if t.column == column:
                return t
        raise KeyError(column)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._by_name
        except TypeError:  # an unhashable name is no column's
            return False

    @property
    def content_hash(self) -> str:
        """Hex SHA-256 of :meth:`to_bytes`."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def to_bytes(self) -> bytes:
        if not self._bytes:  # cached: the object is immutable, and profiles can be large
            self._bytes.append(_serialize(self))
        return self._bytes[0]

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        return _deserialize(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        return cls.from_bytes(Path(path).read_bytes())

    def to_frame(self) -> pd.DataFrame:
        """The reference rebuilt from the profile: the same values and nulls per column, in sorted
        order (row alignment across columns is not kept). Exact for exactly kept columns; sketched
        columns come back as their bin means."""
        data: dict[str, Any] = {}
        for c in self.column_profiles:
            values = c.sample.expand()
            pad = self.n_rows - len(values)
            if c.kind == "numerical":
                col = np.concatenate([values.astype(np.float64), np.full(pad, np.nan)])
                data[c.name] = col.astype(np.int64) if c.sample.integer and pad == 0 else col
            else:
                col_obj = np.empty(self.n_rows, dtype=object)
                col_obj[: len(values)] = values
                col_obj[len(values) :] = None
                data[c.name] = col_obj
        return pd.DataFrame(data, index=pd.RangeIndex(self.n_rows))


def build_profile(
    reference: pd.DataFrame,
    categorical: Sequence[str] = (),
    columns: Sequence[str] | None = None,
    *,
    max_exact: int = DEFAULT_MAX_EXACT,
    sketch_bins: int = DEFAULT_SKETCH_BINS,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    embeddings: Mapping[str, str | Sequence[str]] | None = None,
    text: Sequence[str] | None = None,
    embedding_sample_rows: int = EMBEDDING_SAMPLE_ROWS,
) -> ReferenceProfile:
    """Profile ``reference``: every column, or only ``columns``; ``categorical`` forces that kind.

    ``sample_rows`` whole rows (drawn without replacement, seeded) are kept as well, for the
    multivariate domain-classifier check, which needs rows; 0 keeps none.
    ``embeddings`` names embeddings (a list column, columns, or a prefix glob each, see
    :func:`~detectors.embeddings.resolve_columns`); a list column of numbers that no spec names is
    an embedding of its own name. ``text`` names free-text columns, None
    recognises them (:func:`~detectors.text.looks_like_text`), ``()`` takes none. Their columns
    are profiled as embeddings and texts, not as columns.
    Raises ``KeyError`` naming a requested column that the data does not have, ``ValueError`` for
    an embedding spec that does not fit the data.
    """
    names = list(reference.columns) if columns is None else list(columns)
    missing = [c for c in [*names, *categorical, *(text or ())] if c not in reference.columns]
    if missing:
        raise KeyError(f"column(s) not in the reference data: {', '.join(map(str, missing))}")
    cat = set(categorical)
    emb_profiles = []
    used: set[str] = set()
    specs: dict[str, str | Sequence[str]] = dict(embeddings or {})
    named = {c for spec in specs.values() for c in ([spec] if isinstance(spec, str) else spec)}
    for n in names:  # a list column named by no spec is an embedding of its own name
        if str(n) not in named and str(n) not in specs and looks_like_vectors(reference[n]):
            specs[str(n)] = str(n)
    for emb_name, spec in specs.items():
        cols = resolve_columns(reference.columns, spec, emb_name)
        matrix = embedding_matrix(reference, cols, emb_name)
        emb_profiles.append(build_embedding_profile(emb_name, cols, matrix, len(reference) - len(matrix),
                                                    sample_rows=embedding_sample_rows, seed=seed))  # fmt: skip
        used.update(cols)
    if text is None:
        text = [str(n) for n in names if n not in cat and n not in used and looks_like_text(reference[n])]
    texts = tuple(build_text_profile(str(c), reference[c], seed=seed) for c in text)
    used.update(text)
    names = [n for n in names if n not in used]
    profiles = tuple(
        profile_column(str(n), reference[n], n in cat, max_exact=max_exact, sketch_bins=sketch_bins) for n in names
    )
    rows = None
    if sample_rows > 0:
        k = min(sample_rows, len(reference))
        idx = np.sort(np.random.default_rng(seed).choice(len(reference), k, replace=False))
        rows = reference[names].iloc[idx].reset_index(drop=True)
        rows.columns = [str(c) for c in rows.columns]
    order = tuple(str(c) for c in reference.columns if c in set(names) | used) if used else ()
    return ReferenceProfile(len(reference), profiles, rows, tuple(emb_profiles), texts, order)


def profile_column(
    name: str, series: pd.Series, categorical: bool, *, max_exact: int, sketch_bins: int
) -> ColumnProfile:
    kind = infer_kind(series, categorical)
    family = dtype_family(series)
    sample = Sample.from_values(series, kind)
    n_null = len(series) - sample.n
    if kind == "numerical" and sample.n_unique > max_exact:
        lo, hi, sketched = sketch_sample(sample, sketch_bins)
        return ColumnProfile(name, kind, family, len(series), n_null, sketched, True, lo, hi, sketch_bins)
    return ColumnProfile(name, kind, family, len(series), n_null, sample)


def _serialize(profile: ReferenceProfile) -> bytes:
    blobs: list[bytes] = []
    offset = 0

    def put(arr: np.ndarray) -> dict[str, Any]:
        nonlocal offset
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        blobs.append(raw)
        entry = {"offset": offset, "nbytes": len(raw), "dtype": arr.dtype.newbyteorder("<").str}
        offset += len(raw)
        return entry

    cols = []
    for c in profile.column_profiles:
        entry: dict[str, Any] = {
            "name": c.name,
            "kind": c.kind,
            "family": c.family,
            "n_rows": c.n_rows,
            "n_null": c.n_null,
            "integer": c.sample.integer,
            "distinct": c.sample.distinct,
            "sketch": c.sketch,
            "sketch_lo": c.sketch_lo,
            "sketch_hi": c.sketch_hi,
            "sketch_bins": c.sketch_bins,
            "counts": put(c.sample.counts.astype(np.int64)),
        }
        if c.kind == "numerical":
            entry["values"] = put(c.sample.values.astype(np.float64))
        else:
            entry["labels"] = [_json_label(v) for v in c.sample.values.tolist()]
        cols.append(entry)
    rows: dict[str, Any] | None = None
    if profile.row_sample is not None:
        kinds = profile.kinds
        rows = {"n": len(profile.row_sample), "columns": []}
        for name in profile.row_sample.columns:
            series = profile.row_sample[name]
            if kinds.get(name) == "numerical":
                arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
                rows["columns"].append({"name": name, "numbers": put(arr)})
            else:
                labels = [None if pd.isna(v) else _json_label(plain_label(v)) for v in series.tolist()]
                rows["columns"].append({"name": name, "labels": labels})
    parts = {
        "format": FORMAT_VERSION,
        "n_rows": profile.n_rows,
        "columns": cols,
        "rows": rows,
        "embeddings": [_embedding_entry(e, put) for e in profile.embeddings],
        "texts": [_text_entry(t, put) for t in profile.texts],
        "order": list(profile.order),
    }
    header = json.dumps(parts, sort_keys=True, allow_nan=False).encode()
    payload = struct.pack("<Q", len(header)) + header + b"".join(blobs)
    return _MAGIC + struct.pack("<I", FORMAT_VERSION) + zlib.compress(payload, 1)


Put = Callable[[np.ndarray], dict[str, Any]]
Get = Callable[[dict[str, Any]], np.ndarray]


def _samples_entry(samples: Sequence[Sample], put: Put) -> dict[str, Any]:
    """Numerical samples as three arrays: their lengths, values and counts end to end."""
    return {
        "lengths": put(np.array([s.n_unique for s in samples], dtype=np.int64)),
        "values": put(np.concatenate([s.values for s in samples]).astype(np.float64)),
        "counts": put(np.concatenate([s.counts for s in samples]).astype(np.int64)),
        "distinct": [s.distinct for s in samples],
    }


def _samples_of(entry: dict[str, Any], get: Get) -> tuple[Sample, ...]:
    ends = np.cumsum(get(entry["lengths"]))
    values = np.split(get(entry["values"]), ends[:-1])
    counts = np.split(get(entry["counts"]), ends[:-1])
    return tuple(Sample(v, c, "numerical", False, d) for v, c, d in zip(values, counts, entry["distinct"], strict=True))


def _embedding_entry(e: EmbeddingProfile, put: Put) -> dict[str, Any]:
    return {
        "name": e.name,
        "columns": list(e.columns),
        "n_rows": e.n_rows,
        "n_null": e.n_null,
        "mean": put(e.mean.astype(np.float64)),
        "components": _samples_entry(e.components, put),
        "sketch_lo": put(e.sketch_lo.astype(np.float64)),
        "sketch_hi": put(e.sketch_hi.astype(np.float64)),
        "sketch_bins": e.sketch_bins,
        "sample": put(e.sample.astype(np.float64)),
        "sample_shape": list(e.sample.shape),
        "bandwidth": put(e.bandwidth.astype(np.int64)),
    }


def _embedding_of(entry: dict[str, Any], get: Get) -> EmbeddingProfile:
    return EmbeddingProfile(
        entry["name"],
        tuple(entry["columns"]),
        entry["n_rows"],
        entry["n_null"],
        get(entry["mean"]),
        _samples_of(entry["components"], get),
        get(entry["sketch_lo"]),
        get(entry["sketch_hi"]),
        entry["sketch_bins"],
        get(entry["sample"]).reshape(entry["sample_shape"]),
        get(entry["bandwidth"]),
    )


def _text_entry(t: TextProfile, put: Put) -> dict[str, Any]:
    return {
        "column": t.column,
        "n_rows": t.n_rows,
        "n_null": t.n_null,
        "texts": list(t.texts),
        "vocabulary": list(t.vocabulary),
        "descriptors": _samples_entry(t.descriptor_samples, put),
        # NaN marks a descriptor kept exactly; JSON has no NaN, so an array carries the ranges
        "ranges": put(np.array([t.descriptor_lo, t.descriptor_hi], dtype=np.float64)),
        "sketch_bins": t.sketch_bins,
        "descriptor_nulls": list(t.descriptor_nulls),
    }


def _text_of(entry: dict[str, Any], get: Get) -> TextProfile:
    lo, hi = get(entry["ranges"]).reshape(2, -1)
    return TextProfile(
        entry["column"],
        entry["n_rows"],
        entry["n_null"],
        tuple(entry["texts"]),
        tuple(entry["vocabulary"]),
        _samples_of(entry["descriptors"], get),
        tuple(lo.tolist()),
        tuple(hi.tolist()),
        entry["sketch_bins"],
        tuple(entry["descriptor_nulls"]),
    )


def _json_label(value: Any) -> Any:
    # labels JSON cannot hold as themselves (timestamps, decimals...) are kept as their text
    return value if isinstance(value, str | int | float | bool) else str(value)


def _deserialize(data: bytes) -> ReferenceProfile:
    if not data.startswith(_MAGIC):
        raise ProfileFormatError("not a reference profile (bad magic bytes)")
    (version,) = struct.unpack_from("<I", data, len(_MAGIC))
    if version not in _READABLE_VERSIONS:
        readable = ", ".join(map(str, _READABLE_VERSIONS))
        raise ProfileFormatError(f"profile format {version} is not supported (this code reads {readable})")
    try:
        payload = zlib.decompress(data[len(_MAGIC) + 4 :])
    except zlib.error as exc:
        raise ProfileFormatError(f"corrupt reference profile: {exc}") from None
    (hlen,) = struct.unpack_from("<Q", payload, 0)
    header = json.loads(payload[8 : 8 + hlen])
    body = memoryview(payload)[8 + hlen :]

    def get(entry: dict[str, Any]) -> np.ndarray:
        raw = body[entry["offset"] : entry["offset"] + entry["nbytes"]]
        return np.frombuffer(raw, dtype=np.dtype(entry["dtype"])).copy()

    cols: list[ColumnProfile] = []
    for e in header["columns"]:
        counts = get(e["counts"])
        if e["kind"] == "numerical":
            values = get(e["values"])
        else:
            values = np.empty(len(e["labels"]), dtype=object)
            values[:] = e["labels"]
        sample = Sample(values, counts, e["kind"], bool(e["integer"]), e.get("distinct"))
        cols.append(
            ColumnProfile(
                e["name"], e["kind"], e["family"], e["n_rows"], e["n_null"], sample,
                e["sketch"], e["sketch_lo"], e["sketch_hi"], e["sketch_bins"],
            )
        )  # fmt: skip
    row_sample = None
    if header.get("rows") is not None:
        frame: dict[str, Any] = {}
        for e in header["rows"]["columns"]:
            frame[e["name"]] = get(e["numbers"]) if "numbers" in e else pd.Series(e["labels"], dtype=object)
        row_sample = pd.DataFrame(frame, index=pd.RangeIndex(header["rows"]["n"]))
    # format 1 had neither embeddings nor texts
    embeddings = tuple(_embedding_of(e, get) for e in header.get("embeddings", ()))
    texts = tuple(_text_of(t, get) for t in header.get("texts", ()))
    order = tuple(header.get("order", ()))
    return ReferenceProfile(header["n_rows"], tuple(cols), row_sample, embeddings, texts, order)


def merge_profiles(
    parts: Iterable[ReferenceProfile],
    *,
    max_exact: int = DEFAULT_MAX_EXACT,
    sketch_bins: int = DEFAULT_SKETCH_BINS,
) -> ReferenceProfile:
    """Merge partial profiles of disjoint row sets (built with the same columns) into one.

    Build the parts with ``max_exact`` large enough to keep every column exactly (a sketch cannot
    be merged: its bins depend on its own quantiles); the merge then sketches the columns that
    have more than ``max_exact`` distinct values, exactly as one :func:`build_profile` call would.
    The merged profile keeps no row sample (a uniform one cannot be drawn from per-part samples of
    unequal parts).
    """
    parts = list(parts)
    if not parts:
        raise ValueError("nothing to merge")
    if any(p.embeddings or p.texts for p in parts):
        # their row and text samples cannot be merged into a uniform sample either
        raise ValueError("profiles with embeddings or text columns cannot be merged: build one profile")
    first = parts[0]
    merged: list[ColumnProfile] = []
    for c in first.column_profiles:
        pieces = [p.column(c.name) for p in parts]
        if any(p.kind != c.kind for p in pieces):
            raise ValueError(f"column {c.name!r}: cannot merge profiles of different kinds")
        if any(p.sketch for p in pieces):
            raise ValueError(f"column {c.name!r} is sketched in a part: build the parts with a larger max_exact")
        if c.kind == "numerical":
            vals = np.concatenate([p.sample.values for p in pieces])
            cnts = np.concatenate([p.sample.counts for p in pieces])
            keys, inverse = np.unique(vals, return_inverse=True)
            sample = Sample(keys, np.bincount(inverse, weights=cnts).astype(np.int64), "numerical",
                            all(p.sample.integer for p in pieces))  # fmt: skip
        else:
            totals: dict[Any, int] = {}
            for p in pieces:
                for v, n in zip(p.sample.values.tolist(), p.sample.counts.tolist(), strict=True):
                    totals[v] = totals.get(v, 0) + n
            labels = np.empty(len(totals), dtype=object)
            labels[:] = list(totals)
            sample = Sample(labels, np.array(list(totals.values()), dtype=np.int64), "categorical")
        n_rows, n_null = sum(p.n_rows for p in pieces), sum(p.n_null for p in pieces)
        if c.kind == "numerical" and sample.n_unique > max_exact:
            lo, hi, sketched = sketch_sample(sample, sketch_bins)
            merged.append(ColumnProfile(c.name, c.kind, c.family, n_rows, n_null, sketched, True, lo, hi, sketch_bins))
        else:
            merged.append(ColumnProfile(c.name, c.kind, c.family, n_rows, n_null, sample))
    return ReferenceProfile(sum(p.n_rows for p in parts), tuple(merged))
