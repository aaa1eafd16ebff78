"""The cost ledger: FOCUS imports, attribution, reports that add up, anomalies, bills, ROI audit.

Every total below is computed by hand from the rows the test writes; each store test runs on a
SQLite file and on the machine's PostgreSQL.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from controller.adapters.store.store import Store
from controller.cli import run
from controller.config import CostsConfig
from controller.errors import DataError
from controller.reactors.context import Context
from controller.reactors.costs import (
    check_spend,
    find_anomalies,
    import_exports,
    month_cost,
    reconcile_retrains,
    roi_audit,
    spend_report,
)
from tests.fakes import InMemoryRegistry
from tests.helpers import write_configs

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def row(
    billed: float,
    start: str,
    end: str | None = None,
    effective: float | None = None,
    tags: dict[str, str] | None = None,
    resource: str = "i-1",
    category: str = "Compute",
    service: str = "Amazon EC2",
    charge: str = "Usage",
    charge_class: str = "",
    currency: str = "USD",
) -> dict[str, Any]:
    """One FOCUS row; ``start``/``end`` are days (YYYY-MM-DD) or ISO times; ``end`` defaults to the next day."""
    s = datetime.fromisoformat(start if "T" in start else start + "T00:00:00+00:00")
    e = s + timedelta(days=1) if end is None else datetime.fromisoformat(end if "T" in end else end + "T00:00:00+00:00")
    return {
        "BilledCost": billed,
        "EffectiveCost": billed if effective is None else effective,
        "BillingCurrency": currency,
        "ChargePeriodStart": s.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ChargePeriodEnd": e.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ChargeCategory": charge,
        "ChargeClass": charge_class,
        "ResourceId": resource,
        "ResourceName": resource,
        "ServiceCategory": category,
        "ServiceName": service,
        "SubAccountId": "111122223333",
        "Tags": json.dumps(tags or {}),
        "x_Unused": "ignored",
    }


def write_csv(path: Path, rows: Sequence[dict[str, Any]], gz: bool = False, drop: str | None = None) -> Path:
    cols = [c for c in rows[0] if c != drop]
    opener: Any = gzip.open if gz else open
    with opener(path, "wt", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def write_parquet(path: Path, rows: Sequence[dict[str, Any]], gz: bool = False) -> Path:
    table = pa.Table.from_pylist(list(rows))
    if not gz:
        pq.write_table(table, path)
        return path
    plain = path.with_suffix(".plain")
    pq.write_table(table, plain)
    with open(plain, "rb") as src, gzip.open(path, "wb") as dst:
        dst.write(src.read())
    return path


def make_ctx(tmp_path: Path, url: str) -> Context:
    """Two watched models with the same features and purpose under different owners (m2 is idle)."""
    path = write_configs(
        tmp_path,
        "data/*.parquet",
        economics={
            "value_per_point": 5.0,
            "traffic_per_day": 100_000,
            "compute_rate_per_hour": 2.0,
            "serving_cost_per_day": 10.0,
            "revenue_per_day": 50.0,
            "labeling_cost_per_row": 0.0,
            "fixed_overhead": 100.0,
        },
        notify={"url": "http://127.0.0.1:9/hooks", "secret_env": "M1_SECRET"},
        features=["x1", "x2", "noise", "color"],
    )
    second = yaml.safe_load((tmp_path / "models" / "m1.yaml").read_text())
    second.update(name="m2", registered_model="m2-registered", owner="other@example.com", team="b")
    second["policy"] = {"idle_traffic_per_day": 1_000_000}
    (tmp_path / "models" / "m2.yaml").write_text(yaml.safe_dump(second))
    store = Store(url)
    store.migrate()
    return Context.from_config(path, registry=InMemoryRegistry(), store=store, clock=lambda: NOW)


@pytest.fixture(params=["sqlite", "postgres"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    c = make_ctx(tmp_path, url)
    yield c
    c.store.dispose()


def with_costs(ctx: Context, **costs: Any) -> None:
    """Change the ``costs:`` section of a context's service config (validated like the file)."""
    merged = {**ctx.service.costs.model_dump(), **costs}
    ctx.service = ctx.service.model_copy(update={"costs": CostsConfig.model_validate(merged)})


# reports add up -------------------------------------------------------------------------------
def test_a_report_adds_up_to_the_hand_computed_export(ctx: Context, tmp_path: Path) -> None:
    rows = [
        row(10.0, "2026-11-01", tags={"model": "m1", "stage": "serving"}),
        row(4.0, "2026-11-02", effective=3.0, tags={"model": "m1", "stage": "serving"}),
        # a monthly fee over November's 30 days: 1 a day
        row(30.0, "2026-11-01", "2026-12-01", tags={"model": "m1"}, category="Storage", service="Amazon S3"),
        # the registered model's name finds m2; its team comes from m2's config
        row(6.0, "2026-11-02", tags={"model": "m2-registered", "stage": "training"}),
        # a correction and a credit count as they come
        row(-1.5, "2026-11-02", tags={"model": "m1", "stage": "serving"}, charge="Usage", charge_class="Correction"),
        row(-2.0, "2026-11-03", tags={"model": "m2"}, charge="Credit"),
        # no model: unattributed, kept and reported
        row(7.0, "2026-11-01", tags={"team": "a"}),
        row(0.5, "2026-11-03"),
    ]
    summary, _ = import_exports(ctx, [write_csv(tmp_path / "nov.csv", rows)])
    assert summary.rows_read == 8 and summary.days == 30
    assert summary.billed_total == pytest.approx(54.0) and summary.effective_total == pytest.approx(53.0)

    rep = spend_report(ctx, date(2026, 11, 1), date(2026, 11, 3), ["model", "stage"])
    got = {(r.model, r.stage): r.cost for r in rep.rows}
    # effective basis: m1 serving 10 + 3 - 1.5; m1 storage 3 days of the fee; m2 training 6; m2 other -2
    assert got == pytest.approx(
        {("m1", "serving"): 11.5, ("m1", "other"): 3.0, ("m2", "training"): 6.0, ("m2", "other"): -2.0}
    )
    assert rep.unattributed == pytest.approx(7.5)
    assert rep.total == pytest.approx(11.5 + 3.0 + 6.0 - 2.0 + 7.5)
    assert sum(r.cost for r in rep.rows) + rep.unattributed == pytest.approx(rep.total)
    assert rep.currency == "USD"

    billed = spend_report(ctx, date(2026, 11, 1), date(2026, 11, 30), ["team"], basis="billed")
    assert {r.team: r.cost for r in billed.rows} == pytest.approx({"a": 10.0 + 4.0 - 1.5 + 30.0, "b": 6.0 - 2.0})
    assert billed.unattributed == pytest.approx(7.5) and billed.total == pytest.approx(54.0)
    month = spend_report(ctx, date(2026, 11, 4), date(2026, 11, 30), ["model"])
    assert month.total == pytest.approx(27.0) and month.unattributed == 0.0  # only the fee's 27 days


def test_reimporting_or_restating_never_double_counts(ctx: Context, tmp_path: Path) -> None:
    first = [row(10.0, f"2026-10-{d:02d}", tags={"model": "m1", "stage": "serving"}) for d in range(1, 32)]
    path = write_csv(tmp_path / "oct.csv", first)
    import_exports(ctx, [path])
    import_exports(ctx, [path])  # the same file again
    oct_ = (date(2026, 10, 1), date(2026, 10, 31))
    assert spend_report(ctx, *oct_).total == pytest.approx(310.0)
    # the month restated: day 5 billed 25 instead of 10, and a correction of -3 on day 6
    restated = [r for r in first if not r["ChargePeriodStart"].startswith("2026-10-05")]
    restated += [
        row(25.0, "2026-10-05", tags={"model": "m1", "stage": "serving"}),
        row(-3.0, "2026-10-06", tags={"model": "m1", "stage": "serving"}, charge_class="Correction"),
    ]
    summary, _ = import_exports(ctx, [write_csv(tmp_path / "oct-restated.csv", restated)])
    assert summary.replaced_rows == 31
    assert spend_report(ctx, *oct_).total == pytest.approx(310.0 + 15.0 - 3.0)
    # another source never replaces this one's days
    import_exports(ctx, [write_csv(tmp_path / "other.csv", [row(1.0, "2026-10-05")])], source="azure")
    rep = spend_report(ctx, *oct_)
    assert rep.total == pytest.approx(323.0) and rep.unattributed == pytest.approx(1.0)
    # a partial restatement replaces only the days it covers
    import_exports(ctx, [write_csv(tmp_path / "day9.csv", [row(2.0, "2026-10-09", tags={"model": "m1"})])])
    assert spend_report(ctx, *oct_).total == pytest.approx(323.0 - 10.0 + 2.0)


def test_csv_parquet_and_gzip_read_the_same(ctx: Context, tmp_path: Path) -> None:
    rows = [row(1.25 * i, f"2026-11-{i:02d}", tags={"model": "m1"}) for i in range(1, 11)]
    totals = []
    for name, write in [
        ("a.csv", lambda p: write_csv(p, rows)),
        ("a.csv.gz", lambda p: write_csv(p, rows, gz=True)),
        ("a.parquet", lambda p: write_parquet(p, rows)),
        ("a.bin", lambda p: write_parquet(p, rows, gz=True)),  # gzipped Parquet, told by its bytes
    ]:
        summary, _ = import_exports(ctx, [write(tmp_path / name)], source=name)
        totals.append((summary.rows_read, summary.billed_total))
    assert totals == [(10, pytest.approx(68.75))] * 4
    assert spend_report(ctx, date(2026, 11, 1), date(2026, 11, 30)).total == pytest.approx(4 * 68.75)


def test_large_exports_are_read_in_batches_with_progress(ctx: Context, tmp_path: Path) -> None:
    with_costs(ctx, batch_rows=1000)
    rng = np.random.default_rng(3)
    costs = rng.uniform(-1, 5, 4500).round(4)
    rows = [row(float(c), f"2026-11-{1 + i % 28:02d}", tags={"model": "m1"}) for i, c in enumerate(costs)]
    seen: list[int] = []
    summary, _ = import_exports(ctx, [write_csv(tmp_path / "big.csv", rows)], on_batch=lambda f, n: seen.append(n))
    assert seen == [1000, 2000, 3000, 4000, 4500]
    assert summary.billed_total == pytest.approx(float(costs.sum()))
    assert spend_report(ctx, date(2026, 11, 1), date(2026, 11, 30)).total == pytest.approx(float(costs.sum()))


# attribution ----------------------------------------------------------------------------------
def test_stage_rules_run_ids_and_teams(ctx: Context, tmp_path: Path) -> None:
    with_costs(
        ctx,
        stages=[
            {"stage": "storage", "service_category": "Storage"},
            {"stage": "monitoring", "service_name": "Amazon CloudWatch"},
            {"stage": "labeling", "resource_id": "*labeling-job/*"},
        ],
    )
    rid = ctx.store.create_retrain("m1", None, "k1", state="promoted", mlflow_run_id="run-abc")
    assert rid is not None
    rows = [
        row(1.0, "2026-11-01", category="Storage", service="Amazon S3", tags={"model": "m1"}),
        row(2.0, "2026-11-01", category="Management and Governance", service="Amazon CloudWatch", tags={"model": "m1"}),
        row(3.0, "2026-11-01", resource="arn:aws:sagemaker:labeling-job/x", tags={"model": "m1"}),
        row(4.0, "2026-11-01", tags={"mlflow_run_id": "run-abc"}),  # a retrain's job: m1, training
        row(5.0, "2026-11-01", category="Storage", tags={"model": "m1", "stage": "serving"}),  # the tag wins
        row(6.0, "2026-11-01", tags={"model": "m1", "team": "platform"}),  # the tag's team wins
        row(7.0, "2026-11-01", tags={"mlflow_run_id": "run-unknown"}),  # an unknown run: no model
    ]
    import_exports(ctx, [write_csv(tmp_path / "a.csv", rows)])
    rep = spend_report(ctx, date(2026, 11, 1), date(2026, 11, 1), ["model", "team", "stage"])
    got = {(r.model, r.team, r.stage): r.cost for r in rep.rows}
    assert got == {
        ("m1", "a", "storage"): 1.0,
        ("m1", "a", "monitoring"): 2.0,
        ("m1", "a", "labeling"): 3.0,
        ("m1", "a", "training"): 4.0,
        ("m1", "a", "serving"): 5.0,
        ("m1", "platform", "other"): 6.0,
    }
    assert rep.unattributed == 7.0 and rep.total == 28.0


# bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("missing", ["EffectiveCost", "Tags", "ChargePeriodEnd"])
def test_a_missing_column_is_one_line_naming_it(ctx: Context, tmp_path: Path, missing: str) -> None:
    path = write_csv(tmp_path / "bad.csv", [row(1.0, "2026-11-01")], drop=missing)
    with pytest.raises(DataError, match=f"bad.csv: missing FOCUS column '{missing}'"):
        import_exports(ctx, [path])
    assert ctx.store.ledger_span() is None  # nothing half-written


def test_the_cli_imports_reports_and_refuses_bad_input(tmp_path: Path, capsys: Any) -> None:
    make_ctx(tmp_path, f"sqlite:///{tmp_path / 'audit.db'}").store.dispose()  # the store of controller.yaml
    cfg = str(tmp_path / "controller.yaml")
    path = write_csv(tmp_path / "a.csv", [row(2.0, "2026-11-01", tags={"model": "m1"}), row(1.0, "2026-11-02")])
    assert run(["costs", "import", str(path), "--config", cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_read"] == 2
    args = ["costs", "report", "--from", "2026-11-01", "--to", "2026-11-02", "--by", "model", "--by", "stage"]
    assert run([*args, "--config", cfg, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "currency": "USD",
        "from": "2026-11-01",
        "to": "2026-11-02",
        "rows": [{"model": "m1", "team": None, "stage": "other", "cost": 2.0}],
        "unattributed": 1.0,
        "total": 3.0,
    }
    bad = write_csv(tmp_path / "bad.csv", [row(1.0, "2026-11-01")], drop="BilledCost")
    assert run(["costs", "import", str(bad), "--config", cfg]) == 2
    assert "bad.csv: missing FOCUS column 'BilledCost'" in capsys.readouterr().err
    assert run(["costs", "report", "--from", "yesterday", "--config", cfg]) == 2
    assert run(["costs", "report", "--by", "region", "--config", cfg]) == 2
    assert run(["roi", "--month", "2026-13", "--config", cfg]) == 2
    assert run(["costs", "import", str(tmp_path / "nope.csv"), "--config", cfg]) == 2
    text = tmp_path / "notjson.csv"
    write_csv(text, [{**row(1.0, "2026-11-01"), "Tags": "{not json"}])
    assert run(["costs", "import", str(text), "--config", cfg]) == 2
    assert "'Tags' holds text that is not a JSON object" in capsys.readouterr().err


# spend anomalies ------------------------------------------------------------------------------
def _daily(values: Sequence[float], first: date, **tags: str) -> list[dict[str, Any]]:
    return [
        row(float(v), (first + timedelta(days=i)).isoformat(), tags=dict(tags), resource=f"r-{tags.get('stage')}")
        for i, v in enumerate(values)
    ]


def test_anomalies_find_a_spike_and_a_level_shift_once(ctx: Context, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    first = date(2026, 9, 1)
    serving = 100.0 * np.exp(rng.normal(0, 0.04, 90))
    serving[70] *= 3.0
    training = 50.0 * np.exp(rng.normal(0, 0.04, 90))
    training[80:] *= 2.0
    rows = _daily(serving, first, model="m1", stage="serving") + _daily(training, first, model="m1", stage="training")
    import_exports(ctx, [write_csv(tmp_path / "a.csv", rows)])
    found = find_anomalies(ctx, first + timedelta(days=30), first + timedelta(days=89))
    model_level = [(a.series, a.day) for a in found if a.model]
    assert model_level == [
        ("model:m1:serving", first + timedelta(days=70)),
        ("model:m1:training", first + timedelta(days=80)),
    ]
    assert found[0].cost == pytest.approx(serving[70]) and found[0].expected < serving[70] / 2
    # the team series (m1's team "a" comes from its config) sees the same two days
    assert {a.day for a in found if a.series == "team:a"} <= {first + timedelta(days=d) for d in (70, 80)}


def test_the_daily_check_records_and_sends_each_anomaly_once(ctx: Context, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    first = date(2026, 10, 1)
    serving = 100.0 * np.exp(rng.normal(0, 0.04, 60))
    serving[57] *= 4.0
    import_exports(ctx, [write_csv(tmp_path / "a.csv", _daily(serving, first, model="m1", stage="serving"))])
    now = datetime(2026, 11, 30, 7, tzinfo=UTC)
    new = check_spend(ctx, now)
    assert [(a.series, a.day) for a in new if a.model] == [("model:m1:serving", date(2026, 11, 27))]
    assert new[0].drivers[0]["resource_id"] == "r-serving" and new[0].drivers[0]["stage"] == "serving"
    assert check_spend(ctx, now) == []  # seen before: not recorded or sent again
    hooks = [o for o in ctx.store.outbox_items() if o.payload.get("type") == "cost.anomaly"]
    assert len(hooks) == len(new)
    data = hooks[-1].payload["data"] if hooks[-1].payload["data"]["model"] else hooks[0].payload["data"]
    assert data["date"] == "2026-11-27" and data["cost"] == pytest.approx(serving[57]) and data["drivers"]
    assert len(ctx.store.spend_anomalies(date(2026, 11, 1), date(2026, 11, 30))) == len(new)


# reconciliation and measured costs -------------------------------------------------------------
def test_a_bill_replaces_the_estimate_and_is_judged_against_it(ctx: Context, tmp_path: Path) -> None:
    rid = ctx.store.create_retrain(
        "m1",
        None,
        "k1",
        state="promoted",
        cost_estimate=101.0,
        cost_low=100.5,
        cost_high=102.0,
        actual_cost=101.0,
        cost_source="runtime",
        mlflow_run_id="run-1",
    )
    assert rid is not None
    rows = [
        row(3.0, "2026-11-01", tags={"mlflow_run_id": "run-1"}),
        row(2.0, "2026-11-02", tags={"mlflow_run_id": "run-1"}),
    ]
    _, changed = import_exports(ctx, [write_csv(tmp_path / "a.csv", rows)])
    r = ctx.store.retrain(rid)
    assert [c.id for c in changed] == [rid]
    assert r.billed_cost == 5.0 and r.actual_cost == 105.0 and r.cost_source == "billed" and not r.cost_anomaly
    assert reconcile_retrains(ctx) == []  # nothing new
    # the month restated: the job cost 200 more; now outside 1.5x the estimate's interval
    rows.append(row(200.0, "2026-11-02", tags={"mlflow_run_id": "run-1"}))
    import_exports(ctx, [write_csv(tmp_path / "b.csv", rows)])
    r = ctx.store.retrain(rid)
    assert r.billed_cost == 205.0 and r.actual_cost == 305.0 and r.cost_anomaly
    assert [o.dedupe_key for o in ctx.store.outbox_items() if o.payload["type"] == "retrain.cost_anomaly"] == [
        f"webhook:retrain:{rid}:cost_anomaly:billed"
    ]


def test_month_cost_is_measured_where_the_ledger_has_it(ctx: Context, tmp_path: Path) -> None:
    cfg = ctx.model("m1")
    before = month_cost(ctx, cfg, 2026, 11, NOW)
    assert before.source == "config" and before.cost == pytest.approx(10.0 * 30) and before.value == 50.0 * 30
    rows = [row(80.0, f"2026-11-{d:02d}", tags={"model": "m1", "stage": "serving"}) for d in range(1, 21)]
    import_exports(ctx, [write_csv(tmp_path / "a.csv", rows)])
    measured = month_cost(ctx, cfg, 2026, 11, NOW)
    # measured up to the ledger's last day (20 days), against the value of those 20 days
    assert (measured.source, measured.cost, measured.days, measured.value) == ("ledger", 1600.0, 20, 1000.0)
    assert month_cost(ctx, ctx.model("m2"), 2026, 11, NOW).source == "config"  # no spend of m2 in the ledger


def test_roi_audit_gives_verdicts_idle_and_duplicate_models(ctx: Context, tmp_path: Path) -> None:
    months = [(2026, m) for m in (9, 10, 11)]
    rows = []
    for year, month in months:
        for d in range(1, 29):
            rows.append(row(80.0, f"{year}-{month:02d}-{d:02d}", tags={"model": "m1", "stage": "serving"}))
            rows.append(row(5.0, f"{year}-{month:02d}-{d:02d}", tags={"model": "m2", "stage": "serving"}))
    import_exports(ctx, [write_csv(tmp_path / "a.csv", rows)])
    rep = roi_audit(ctx, "2026-11")
    by = {m.model: m for m in rep.models}
    # m1: 80 a day against 50 of revenue, three months running: kill criteria (3 periods)
    assert by["m1"].verdict == "retire" and by["m1"].cost_source == "ledger"
    assert by["m1"].spend_by_stage == {"serving": 80.0 * 28} and by["m1"].roi == pytest.approx((1400 - 2240) / 2240)
    # m2: same features and purpose as m1 under another owner: a duplicate
    assert by["m2"].duplicate_of == ["m1"] and rep.duplicates == [["m1", "m2"]]
    assert by["m2"].verdict == "review" and by["m2"].roi == pytest.approx((1400 - 140) / 140)
    # m2 serves 100,000 predictions a day (config) under its policy's idle threshold of 1,000,000
    assert by["m2"].idle and not by["m1"].idle and rep.idle == ["m2"]
    assert rep.unattributed == 0.0 and rep.currency == "USD"
