"""Billing exports in FOCUS (FinOps Open Cost and Usage Specification) 1.0 or later, read as ledger rows.

AWS Data Exports, Azure Cost Management exports and the GCP billing export all write FOCUS. A file
is CSV or Parquet, plain or gzipped (told apart by its first bytes, not its name). It is read in
batches of ``batch_rows`` (pyarrow), so memory stays bounded whatever the file's size; each batch is
attributed (:class:`Attribution`) and summed per UTC day before it is handed on.

- **Columns used**: ``REQUIRED``; any other column is ignored; a missing one is a one-line
  :class:`~controller.errors.DataError` naming it and the file.
- **Days**: a row's cost is spread over the UTC days its charge period ``[ChargePeriodStart,
  ChargePeriodEnd)`` covers, in proportion to the time on each (a monthly fee lands 1/30 on each
  day of a 30-day month; an hourly row on its day). A period that ends where it starts counts on
  its start day.
- **Negative costs** (credits, refunds, corrections) count as they come: they are summed, never
  dropped or netted against anything else.
- **Attribution**: the model from the model tag (its name, or its registered model's name), else
  from the run-id tag of a known retrain; the team from the team tag, else the model's config;
  the stage from the stage tag, else the first stage rule that matches, else ``training`` for a
  row tagged with a run id, else ``other``. A row with no model stays in the ledger with
  ``model`` null: unattributed spend, reported, never dropped.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from controller.adapters.store.ledger import SpendBatch
from controller.errors import DataError

REQUIRED = (
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ResourceId",
    "ResourceName",
    "ServiceCategory",
    "ServiceName",
    "SubAccountId",
    "Tags",
)
TEXT = ("BillingCurrency", "ChargeCategory", "ChargeClass", "ResourceId", "ResourceName", "ServiceCategory",
        "ServiceName", "SubAccountId")  # fmt: skip
STAGES = frozenset({"training", "serving", "storage", "monitoring", "labeling", "other"})
KEYS = ["day", "model", "team", "stage", "run_id", "resource_id", "service_category", "service_name",
        "sub_account", "charge_category", "charge_class", "currency"]  # fmt: skip
DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class StagePattern:
    stage: str
    service_category: str | None = None
    service_name: str | None = None
    resource_id: str | None = None

    def matches(self, category: str | None, service: str | None, resource: str | None) -> bool:
        pairs = ((self.service_category, category), (self.service_name, service), (self.resource_id, resource))
        return all(p is None or (v is not None and fnmatch.fnmatchcase(v, p)) for p, v in pairs)


@dataclass(frozen=True)
class Attribution:
    """How a billing row finds its model, team and stage (the ``costs:`` section, plus what the
    controller knows: model names, registered-model names, teams and retrains' run ids)."""

    model_tag: str = "model"
    team_tag: str = "team"
    stage_tag: str = "stage"
    run_tag: str = "mlflow_run_id"
    rules: tuple[StagePattern, ...] = ()
    model_names: Mapping[str, str] = field(default_factory=dict)
    """A tag value (model name or registered model) -> the model's name."""
    model_teams: Mapping[str, str] = field(default_factory=dict)
    run_models: Mapping[str, str] = field(default_factory=dict)
    """An MLflow run id of a retrain -> its model."""

    def stage_of(self, category: str | None, service: str | None, resource: str | None) -> str | None:
        return next((r.stage for r in self.rules if r.matches(category, service, resource)), None)


def read_export(
    path: Path,
    attribution: Attribution,
    batch_rows: int = 100_000,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[SpendBatch]:
    """The ledger rows of one FOCUS file, a batch at a time (see the module docstring).

    ``on_batch`` is called with the rows read so far after each batch (progress).
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    read = 0
    with _plain(path) as (plain, kind):
        for batch in _batches(plain, kind, path, batch_rows):
            read += batch.num_rows
            yield _ledger_batch(batch, attribution, path)
            if on_batch is not None:
                on_batch(read)


class _plain:
    """The file as a plain CSV or Parquet path: a gzipped Parquet file is unpacked to a temporary
    file (Parquet is read from its footer, which a gzip stream cannot seek to); a gzipped CSV is
    streamed as it is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> tuple[Path, str]:
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head[:2] != b"\x1f\x8b":
            return self.path, "parquet" if head == b"PAR1" else "csv"
        with gzip.open(self.path, "rb") as g:
            inner = g.read(4)
        if inner != b"PAR1":
            return self.path, "csv.gz"
        self._tmp = tempfile.TemporaryDirectory(prefix="focus-")
        target = Path(self._tmp.name) / "export.parquet"
        with gzip.open(self.path, "rb") as g, open(target, "wb") as out:
            shutil.copyfileobj(g, out, 1 << 20)
        return target, "parquet"

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _batches(path: Path, kind: str, shown: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        if kind == "parquet":
            pf = pq.ParquetFile(path)
            _require(pf.schema_arrow.names, shown)
            yield from pf.iter_batches(batch_size=batch_rows, columns=list(REQUIRED))
            return
        source: Any = pa.input_stream(str(path), compression="gzip" if kind == "csv.gz" else None)
        # blocks of a few MB read one at a time: memory follows the block, not the file
        read = pacsv.ReadOptions(block_size=min(max(1 << 20, batch_rows * 80), 16 << 20), use_threads=False)
        header = pacsv.open_csv(
            source, read_options=read, convert_options=pacsv.ConvertOptions(include_columns=[])
        ).schema.names
        source.close()
        _require(header, shown)
        convert = pacsv.ConvertOptions(
            include_columns=list(REQUIRED),
            column_types={c: pa.string() for c in REQUIRED if c not in ("BilledCost", "EffectiveCost")}
            | {"BilledCost": pa.float64(), "EffectiveCost": pa.float64()},
            strings_can_be_null=True,
        )
        source = pa.input_stream(str(path), compression="gzip" if kind == "csv.gz" else None)
        reader = pacsv.open_csv(source, read_options=read, convert_options=convert)
        for batch in reader:
            yield from _slices(batch, batch_rows)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{shown}: not a readable FOCUS CSV or Parquet file ({str(exc).splitlines()[0]})") from None


def _slices(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    for at in range(0, batch.num_rows, rows):
        yield batch.slice(at, rows)


def _require(columns: Sequence[str], path: Path) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise DataError(
            f"{path}: missing FOCUS column {missing[0]!r}"
            + (f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else "")
        )


def _text(col: pa.Array | pa.ChunkedArray) -> pd.Series:
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
    return col.to_pandas()


def _times(col: pa.Array, name: str, path: Path) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) of a timestamp or ISO 8601 text column; each distinct text
    is parsed once (an export repeats a few hundred charge periods over a million rows)."""
    if pa.types.is_timestamp(col.type):
        tz = col.type.tz
        values = col.cast(pa.timestamp("ns", tz=tz)).to_numpy(zero_copy_only=False)
        return np.asarray(values.astype("datetime64[ns]").astype(np.int64))
    text = _text(col)
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(f"{path}: column {name!r} has an empty value on row {int(np.argmax(codes < 0)) + 1} of a batch")
    try:
        parsed = pd.to_datetime(pd.Series(uniques), utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: column {name!r} is not an ISO 8601 time ({exc})") from None
    return np.asarray(parsed.astype("int64").to_numpy())[codes]


def _tags(col: pa.Array, attribution: Attribution, path: Path) -> pd.DataFrame:
    """The model, team, stage and run-id tags of each row; each distinct Tags value is parsed once."""
    keys = (attribution.model_tag, attribution.team_tag, attribution.stage_tag, attribution.run_tag)
    if pa.types.is_map(col.type):
        values: list[Any] = [dict(v) if v is not None else None for v in col.to_pylist()]
        text = pd.Series([json.dumps(v, sort_keys=True) if v is not None else None for v in values])
    else:
        text = _text(col)
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    parsed = []
    for raw in uniques:
        try:
            tags = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            raise DataError(f"{path}: column 'Tags' holds text that is not a JSON object: {raw[:80]!r}") from None
        if not isinstance(tags, dict):
            raise DataError(f"{path}: column 'Tags' holds a JSON {type(tags).__name__}, not an object: {raw[:80]!r}")
        parsed.append(tuple(None if tags.get(k) in (None, "") else str(tags[k]) for k in keys))
    table = pd.DataFrame([*parsed, (None, None, None, None)], columns=["model", "team", "stage", "run_id"])
    return table.iloc[np.where(codes < 0, len(parsed), codes)].reset_index(drop=True)


def _ledger_batch(batch: pa.RecordBatch, a: Attribution, path: Path) -> SpendBatch:
    n = batch.num_rows
    col = {name: batch.column(batch.schema.get_field_index(name)) for name in REQUIRED}
    billed = np.nan_to_num(col["BilledCost"].cast(pa.float64()).to_numpy(zero_copy_only=False), nan=0.0)
    effective = np.nan_to_num(col["EffectiveCost"].cast(pa.float64()).to_numpy(zero_copy_only=False), nan=0.0)
    start = _times(col["ChargePeriodStart"], "ChargePeriodStart", path)
    end = _times(col["ChargePeriodEnd"], "ChargePeriodEnd", path)
    frame = _tags(col["Tags"], a, path)
    text = {name: _text(col[name]) for name in TEXT}

    # model: the tag (a model's name or its registered model), else a known retrain's run id
    tagged = frame["model"].map(lambda v: a.model_names.get(v, v) if v is not None else None)
    by_run = frame["run_id"].map(lambda v: a.run_models.get(v) if v is not None else None)
    model = tagged.where(tagged.notna(), by_run)
    team = frame["team"].where(frame["team"].notna(), model.map(lambda m: a.model_teams.get(m) if m else None))
    stage = frame["stage"].where(frame["stage"].isin(STAGES))
    if a.rules and stage.isna().any():
        triples = pd.DataFrame({"c": text["ServiceCategory"], "s": text["ServiceName"], "r": text["ResourceId"]}).where(
            stage.isna()
        )
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(triples.fillna("\x00")), use_na_sentinel=False)
        ruled = [a.stage_of(*(None if v == "\x00" else v for v in u)) for u in uniques]
        stage = stage.where(stage.notna(), pd.Series(np.array(ruled, dtype=object)[codes]))
    stage = stage.where(stage.notna(), np.where(frame["run_id"].notna(), "training", "other"))

    # spread each row over the UTC days of its charge period
    first = start // DAY_NS
    last = np.maximum(first, (np.maximum(end, start + 1) - 1) // DAY_NS)
    span = (last - first + 1).astype(np.int64)
    rows = np.repeat(np.arange(n), span)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(span) - span, span)
    day = first[rows] + offset
    length = np.maximum(end - start, 0)
    lo = np.maximum(start[rows], day * DAY_NS)
    hi = np.minimum(np.maximum(end[rows], start[rows]), (day + 1) * DAY_NS)
    share = np.where(length[rows] > 0, (hi - lo) / np.where(length[rows] > 0, length[rows], 1), 1.0)
    parts = pd.DataFrame(
        {
            "day": day,
            "model": model.to_numpy(object)[rows],
            "team": team.to_numpy(object)[rows],
            "stage": stage.to_numpy(object)[rows],
            "run_id": frame["run_id"].to_numpy(object)[rows],
            "resource_id": text["ResourceId"].to_numpy(object)[rows],
            "service_category": text["ServiceCategory"].to_numpy(object)[rows],
            "service_name": text["ServiceName"].to_numpy(object)[rows],
            "sub_account": text["SubAccountId"].to_numpy(object)[rows],
            "charge_category": text["ChargeCategory"].to_numpy(object)[rows],
            "charge_class": text["ChargeClass"].to_numpy(object)[rows],
            "currency": text["BillingCurrency"].to_numpy(object)[rows],
            "billed_cost": billed[rows] * share,
            "effective_cost": effective[rows] * share,
            "rows": share,
        }
    )
    summed = parts.groupby(KEYS, dropna=False, sort=False).sum().reset_index()
    days = pd.to_datetime(summed["day"].to_numpy() * DAY_NS, unit="ns").date
    summed["day"] = days
    summed["rows"] = np.ceil(summed["rows"].to_numpy() - 1e-9).astype(int)
    summed = summed.astype(object).where(summed.notna(), None)
    return SpendBatch(
        rows=summed.to_dict("records"),
        rows_read=n,
        days=frozenset(date.fromordinal(int(d) + 719163) for d in np.unique(day)),
        billed=float(billed.sum()),
        effective=float(effective.sum()),
    )
