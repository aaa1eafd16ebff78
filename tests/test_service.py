"""One check and one retrain end to end, on real files and a real SQLite store, with the in-memory registry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from controller.adapters.registry.base import TrainingRecord
from controller.adapters.store.tables import OutboxRow
from controller.adapters.trainers import sklearn_classifier
from controller.core.decision import Action
from controller.errors import GiveUp
from controller.reactors.baseline import build_baseline, features_of
from controller.reactors.check import run_check
from controller.reactors.context import Context
from controller.reactors.outbox import deliver_outbox
from controller.reactors.retrain import run_retrain
from controller.reactors.schedule import due_checks
from tests.fakes import TAGGED_RUNS, InMemoryRegistry
from tests.helpers import T0, make_rows, write_configs

WEEK = timedelta(days=7)


def _setup(
    tmp_path: Path, week: pd.DataFrame, labeled: bool = True, labels: pd.DataFrame | None = None, **model: object
) -> Context:
    ref = make_rows(4000, T0 - 2 * WEEK, seed=10)
    (tmp_path / "data").mkdir(exist_ok=True)
    week.drop(columns="label").to_parquet(tmp_path / "data" / "current.parquet")
    if labels is None:
        labels = week[["id", "label"]] if labeled else week[["id", "label"]].iloc[:0]
    labels.to_parquet(tmp_path / "labels.parquet")
    path = write_configs(tmp_path, "data/*.parquet", labels="labels.parquet", **model)
    registry = InMemoryRegistry()
    ctx = Context.from_config(path, registry=registry, clock=lambda: T0 + WEEK)
    cfg = ctx.model("m1")
    features = features_of(cfg, [c for c in ref.columns])
    train, holdout = ref.iloc[:3000], ref.iloc[3000:]
    clf = sklearn_classifier(train, features=features, target="label")
    baseline = build_baseline(cfg, clf, train, holdout, features)
    registry.set_model_tags("m1", {"owner": "from-tag"})
    v = registry.log_version("m1", TrainingRecord(clf, baseline, {}, {}, 3600.0))
    registry.set_alias("m1", "champion", v.version)
    return ctx


def test_stable_window_defers_with_realized_performance(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=11))
    out = run_check(ctx, "m1")
    assert out.decision is not None and out.decision.action == Action.DEFER
    assert out.signals["source"] == "realized"
    assert out.signals["drift_share"] is not None and out.signals["drift_share"] < 0.5
    # The interval carries the baseline's own holdout noise: wider than the window's bootstrap alone.
    low, high = out.signals["current_low"], out.signals["current_high"]
    assert low <= out.signals["baseline"] <= high
    assert high - low > 2 * 1.64 * (0.84 * 0.16 / 3000) ** 0.5
    assert ctx.store.outbox_counts() == {"pending": 2}  # committed first, delivered after
    assert "retrain.decision" not in ctx.registry.version_tags("m1", "1")
    deliver_outbox(ctx)
    tags = ctx.registry.version_tags("m1", "1")
    assert tags["retrain.decision"] == "DEFER" and tags["retrain.metric_source"] == "realized"
    assert ctx.store.outbox_counts() == {"delivered": 1, "suppressed": 1}  # no webhook URL configured


def test_unchanged_decisions_rewrite_the_version_tags_once_per_digest_period(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=11))
    start = T0 + WEEK
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    times = [day + timedelta(hours=h) for h in (1, 2, 3)] + [day + timedelta(days=1, hours=1)]
    outs = [run_check(ctx, "m1", now=when) for when in times]
    assert all(o.decision is not None and o.decision.action == Action.DEFER for o in outs)
    with ctx.store.session() as s:
        keys = sorted(s.scalars(sa.select(OutboxRow.dedupe_key).where(OutboxRow.kind == "mlflow_tags")))
    # the first check and the first of the next day; the checks in between change only numbers
    assert keys == sorted([f"tags:check:{outs[0].check_id}", f"tags:check:{outs[3].check_id}"])
    assert ctx.store.outbox_counts() == {"pending": 6}  # every check still has its webhook (digested later)


def test_a_planned_retirement_bounds_the_value_of_a_retrain(tmp_path: Path) -> None:
    """retire_on in the model file: a retrain's value counts only until the model retires, in 12 hours."""
    retire = (T0 + WEEK + timedelta(hours=12)).isoformat()
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=12, flip=True), retire_on=retire)
    out = run_check(ctx, "m1")
    assert out.decision is not None and out.decision.numbers.horizon_days == pytest.approx(0.5)
    n = out.decision.numbers
    assert 0 < n.expected_recovery < n.loss_per_day  # half a day of the (one day ahead) loss, at most


def test_concept_drift_triggers_one_retrain_that_is_promoted(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=12, flip=True))
    out = run_check(ctx, "m1", request_key="m1:slot")
    assert out.decision is not None and out.decision.action == Action.TRIGGER, out.decision
    assert out.retrain_id is not None
    again = run_check(ctx, "m1", request_key="m1:slot")  # a redelivered task
    assert again.skipped and again.check_id == out.check_id
    assert len(ctx.store.retrains("m1")) == 1
    result = run_retrain(ctx, out.retrain_id)
    assert result.state == "promoted"
    assert result.challenger_metric is not None and result.champion_metric is not None
    assert result.challenger_metric > result.champion_metric + 0.2
    assert ctx.registry.resolve("m1", "champion").version == result.challenger_version
    assert run_retrain(ctx, out.retrain_id).skipped  # a second delivery does nothing
    row = ctx.store.retrains("m1")[0]
    assert row.recovered and row.actual_cost is not None and row.training_hours is not None
    assert ctx.store.spent("model:m1", T0 + WEEK) == pytest.approx(row.cost_estimate)


def test_no_labels_uses_the_estimate_and_says_so(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=13, shift=3.0), labeled=False)
    out = run_check(ctx, "m1")
    assert out.decision is not None
    assert out.signals["source"] == "estimated" and out.decision.signal_source == "estimated"
    assert out.decision.action == Action.DEFER
    drifted = {c["column"] for c in out.signals["drift"]["columns"] if c["drifted"]}
    assert drifted == {"noise"}  # the input the model ignores moved a lot; accuracy did not


def test_broken_column_vetoes(tmp_path: Path) -> None:
    week = make_rows(3000, T0, seed=14, flip=True)
    week["x1"] = float("nan")
    ctx = _setup(tmp_path, week)
    out = run_check(ctx, "m1")
    assert out.decision is not None and out.decision.action == Action.VETO
    assert "data_quality_failure" in out.decision.reason_codes and out.retrain_id is None


def test_owner_from_tag_when_config_has_none_and_veto_without_any(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=15, flip=True), owner=None)
    out = run_check(ctx, "m1")
    assert out.decision is not None and out.decision.action == Action.TRIGGER  # the registry tag names an owner
    ctx.registry.set_model_tags("m1", {"owner": ""})
    ctx.store.update_retrain(out.retrain_id, state="failed")  # type: ignore[arg-type]
    second = run_check(ctx, "m1", now=T0 + WEEK + timedelta(hours=1))
    assert second.decision is not None and second.decision.action == Action.VETO
    assert "no_owner" in second.decision.reason_codes


def test_manual_veto_wins(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=16, flip=True))
    ctx.store.add_override("m1", "veto", "platform-team", "freeze", T0 + 2 * WEEK)
    out = run_check(ctx, "m1")
    assert out.decision is not None and out.decision.action == Action.VETO
    assert "manual_veto" in out.decision.reason_codes


def test_trainer_comes_from_config_never_from_tags(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=17, flip=True))
    ctx.registry.set_model_tags("m1", {"trainer": "os:system"})
    ctx.registry.set_version_tags("m1", "1", {"trainer": "os:system"})
    out = run_check(ctx, "m1")
    assert out.retrain_id is not None
    result = run_retrain(ctx, out.retrain_id)
    params = ctx.registry.models["m1"]["versions"][result.challenger_version]  # type: ignore[attr-defined]
    assert params["tags"]["retrain.role"] == "challenger"
    assert result.state in {"promoted", "rejected"}


def test_missing_baseline_alias_fails_the_check_cleanly(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(300, T0, seed=18), alias="production")
    with pytest.raises(GiveUp, match="no alias 'production'"):
        run_check(ctx, "m1")
    assert ctx.store.checks("m1")[0].status == "failed"


def test_due_checks_follow_schedule_and_retry_after(tmp_path: Path) -> None:
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=19), schedule={"every": "6h"})
    now = T0 + WEEK
    assert due_checks(ctx, now) == ["m1"]
    out = run_check(ctx, "m1", now=now)
    assert out.decision is not None
    assert due_checks(ctx, now + timedelta(hours=1)) == []
    assert due_checks(ctx, now + timedelta(hours=6)) == ["m1"]


def test_partial_labels_fall_back_to_the_estimate_and_the_estimates_error_is_stored(tmp_path: Path) -> None:
    week = make_rows(3000, T0, seed=23)
    # Only 5% of the window's labels have arrived: too few to read the version on, so the estimate is used.
    ctx = _setup(tmp_path, week, labels=week.sample(frac=0.05, random_state=1)[["id", "label"]])
    first = run_check(ctx, "m1")
    assert first.signals["source"] == "estimated" and first.signals["reading_source"] == "estimated"
    assert 100 < first.signals["n_labeled"] <= 150 and first.signals["estimate_trust"] == 1.0
    assert ctx.store.estimation_errors("m1", "accuracy") == []
    # The next week's labels all arrive: the version is read on them, and the estimate is scored.
    nxt = make_rows(3000, T0 + WEEK, seed=29)
    nxt.drop(columns="label").to_parquet(tmp_path / "data" / "w2.parquet")
    arrived = pd.concat([pd.read_parquet(tmp_path / "labels.parquet"), nxt[["id", "label"]]])
    arrived.to_parquet(tmp_path / "labels.parquet")
    second = run_check(ctx, "m1", now=T0 + 2 * WEEK)
    assert second.signals["source"] == "realized"
    errors = ctx.store.estimation_errors("m1", "accuracy")
    assert len(errors) == 1 and errors[0] < 0.03  # CBPE against the realized accuracy of the same rows


def test_reuse_check_promotes_a_registered_challenger_instead_of_training(tmp_path: Path) -> None:
    # A 3-point tolerance: the challenger's accuracy on this week must be that close to the baseline.
    ctx = _setup(tmp_path, make_rows(3000, T0, seed=24, flip=True), policy={"tolerance_points": 3.0})
    cfg = ctx.model("m1")
    flipped = make_rows(4000, T0 - 2 * WEEK, seed=25, flip=True)
    features = features_of(cfg, list(flipped.columns))
    clf = sklearn_classifier(flipped.iloc[:3000], features=features, target="label")
    v2 = ctx.registry.log_version(
        "m1",
        TrainingRecord(clf, build_baseline(cfg, clf, flipped.iloc[:3000], flipped.iloc[3000:], features), {}, {}, 60.0),
    )
    ctx.registry.set_alias("m1", "challenger", v2.version)
    out = run_check(ctx, "m1")
    assert out.decision is not None and out.decision.action == Action.TRIGGER
    assert "promote_registered_version" in out.decision.reason_codes
    assert out.decision.promote_version == v2.version
    assert ctx.store.spent("model:m1", T0 + WEEK) == 0.0  # nothing to train, nothing charged
    assert out.retrain_id is not None
    result = run_retrain(ctx, out.retrain_id)
    assert result.state == "promoted" and result.challenger_version == v2.version
    assert ctx.registry.resolve("m1", "champion").version == v2.version
    assert len(ctx.registry.models["m1"]["versions"]) == 2  # type: ignore[attr-defined]  # no new version trained


def test_evidently_engine_logs_its_html_report_per_check(tmp_path: Path) -> None:
    ctx = _setup(
        tmp_path, make_rows(1500, T0, seed=26, shift=2.0), drift={"engine": "evidently", "categorical": ["color"]}
    )
    out = run_check(ctx, "m1")
    run_id = out.signals["drift_report_run"]
    html = ctx.registry.reports[run_id]["drift.html"]  # type: ignore[attr-defined]
    assert html.lstrip().lower().startswith(b"<html") or b"<!doctype html" in html[:200].lower()
    assert out.signals["drift"]["columns"][2]["column"] == "noise" and out.signals["drift"]["columns"][2]["drifted"]


def test_a_check_stores_its_reading_and_the_next_one_reads_only_new_rows(tmp_path: Path) -> None:
    """Each labelled row is read once: the second check's reading starts where the first one's ended."""
    week = make_rows(3000, T0, seed=27)
    ctx = _setup(tmp_path, week, schedule={"every": "1d"})
    first = run_check(ctx, "m1", now=T0 + WEEK - timedelta(days=1))
    second = run_check(ctx, "m1", now=T0 + WEEK)
    assert first.signals["reading_source"] == "realized" and second.signals["reading_source"] == "realized"
    assert second.signals["rows_from"] == first.signals["rows_to"] == T0 + WEEK - timedelta(days=1)
    assert 300 < second.signals["n_labeled"] < 600  # the last day's rows only, not the week's
    stored = ctx.store.check_history("m1")
    assert [c.rows_from for c in stored] == [second.signals["rows_from"], first.signals["rows_from"]]
    assert stored[0].metric_value == pytest.approx(second.signals["reading"])
    assert second.signals["pooled_readings"] == 2  # the level pools both readings


def _regression_rows(n: int, seed: int, flip: bool = False) -> pd.DataFrame:
    rows = make_rows(n, T0, seed=seed)
    rng = np.random.default_rng(seed)
    rows["label"] = 3.0 * rows["x1"] + (-2.0 if flip else 2.0) * rows["x2"] + rng.normal(0, 0.5, n)
    return rows


@pytest.mark.parametrize(
    ("labeled", "flip", "source", "action"),
    [
        (True, True, "realized", Action.TRIGGER),
        (False, False, "estimated", Action.DEFER),
    ],
)
def test_regression_model_realized_and_direct_loss_estimate(
    tmp_path: Path, labeled: bool, flip: bool, source: str, action: Action
) -> None:
    from controller.adapters.trainers import sklearn_regressor

    week = _regression_rows(3000, 41, flip=flip)
    (tmp_path / "data").mkdir()
    week.drop(columns="label").to_parquet(tmp_path / "data" / "w.parquet")
    (week if labeled else week.iloc[:0])[["id", "label"]].to_parquet(tmp_path / "labels.parquet")
    econ = {
        "metric": "mae",
        "higher_is_better": False,
        "value_per_point": 5.0,
        "traffic_per_day": 100_000,
        "compute_rate_per_hour": 2.0,
        "fixed_overhead": 100,
    }
    path = write_configs(
        tmp_path,
        "data/*.parquet",
        labels="labels.parquet",
        task="regression",
        economics=econ,
        trainer={"callable": "controller.adapters.trainers:sklearn_regressor"},
    )
    registry = InMemoryRegistry()
    ctx = Context.from_config(path, registry=registry, clock=lambda: T0 + WEEK)
    cfg = ctx.model("m1")
    ref = _regression_rows(4000, 42)
    features = features_of(cfg, list(ref.columns))
    reg = sklearn_regressor(ref.iloc[:3000], features=features, target="label")
    v = registry.log_version(
        "m1", TrainingRecord(reg, build_baseline(cfg, reg, ref.iloc[:3000], ref.iloc[3000:], features), {}, {}, 60.0)
    )
    registry.set_alias("m1", "champion", v.version)
    out = run_check(ctx, "m1")
    assert out.decision is not None and out.signals["source"] == source
    assert out.decision.action == action, out.decision.summary
    assert out.signals["current"] == pytest.approx(out.signals["baseline"], abs=0.1 if not flip else 10.0)


def test_a_retrain_whose_worker_died_is_reclaimed_after_its_lease(tmp_path: Path) -> None:
    from controller.reactors.retrain import reclaim_retrains

    ctx = _setup(tmp_path, make_rows(3000, T0, seed=28, flip=True))
    out = run_check(ctx, "m1")
    assert out.retrain_id is not None
    assert ctx.store.claim_retrain(out.retrain_id, ["queued"], "training")  # a worker took it, then died
    assert ctx.store.retrain_in_flight("m1")
    lease = timedelta(hours=ctx.service.retrain_lease_hours)
    from controller.adapters.store.tables import utcnow

    assert reclaim_retrains(ctx, utcnow() + lease / 2) == []
    assert reclaim_retrains(ctx, utcnow() + lease + timedelta(minutes=1)) == [out.retrain_id]
    assert run_retrain(ctx, out.retrain_id).state == "promoted"  # redone by the next worker


def test_an_outage_during_a_retrain_releases_it_for_the_retry(tmp_path: Path) -> None:
    from controller.errors import RetryLater

    ctx = _setup(tmp_path, make_rows(3000, T0, seed=29, flip=True))
    out = run_check(ctx, "m1")
    assert out.retrain_id is not None

    def down(*_: object, **__: object) -> None:
        raise RetryLater("MLflow is unreachable", delay=5)

    real = ctx.registry.log_version
    ctx.registry.log_version = down  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        run_retrain(ctx, out.retrain_id)
    assert ctx.store.retrain(out.retrain_id).state == "queued"
    ctx.registry.log_version = real  # type: ignore[method-assign]
    assert run_retrain(ctx, out.retrain_id).state == "promoted"


def test_multivariate_drift_sees_a_joint_shift_the_columns_hide(tmp_path: Path) -> None:
    week = make_rows(3000, T0, seed=30)
    week["x2"] = week["x1"] + 0.05 * np.random.default_rng(0).normal(size=len(week))  # same margins, now coupled
    ctx = _setup(tmp_path, week, multivariate_drift=True)
    out = run_check(ctx, "m1")
    md = out.signals["multivariate_drift"]
    assert md["drifted"] and md["auc"] > md["threshold"]
    assert {c for c, _ in md["top_columns"][:2]} & {"x1", "x2"}


def test_a_check_reads_text_columns_as_categories_and_decides_as_on_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import controller.reactors.check as service

    week = make_rows(3000, T0, seed=11, shift=0.4)
    week.loc[week.index[::7], "color"] = None  # nulls too
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    categories_ctx = _setup(tmp_path / "a", week)
    read = service.load_window(categories_ctx.model("m1"), T0 + WEEK, categories=True)
    assert isinstance(read.rows["color"].dtype, pd.CategoricalDtype)
    with_categories = run_check(categories_ctx, "m1")

    plain = service.load_window
    monkeypatch.setattr(service, "load_window", lambda cfg, end, categories=False, cache=None: plain(cfg, end))
    strings_ctx = _setup(tmp_path / "b", week)
    assert strings_ctx.model("m1").name == "m1"
    with_strings = run_check(strings_ctx, "m1")
    assert with_strings.signals["drift"]["columns"] and with_categories.signals["n_rows"] == 3000
    assert with_categories.signals == with_strings.signals
    assert with_categories.decision == with_strings.decision


def test_decisions_say_where_their_cost_figures_come_from(tmp_path: Path) -> None:
    """Config rates until the ledger has the model's spend, then measured spend (issue: cost visibility)."""
    from controller.reactors.costs import import_exports
    from tests.test_costs import row, write_csv

    ctx = _setup(tmp_path, make_rows(3000, T0, seed=11))
    first = run_check(ctx, "m1")
    assert first.decision is not None and first.decision.details["cost_source"] == "config"
    assert first.decision.details["running_cost_source"] == "config"
    now = T0 + WEEK
    days = [(now - timedelta(days=d)).date().isoformat() for d in range(1, 11)]
    rows = [row(12.0, d, tags={"model": "m1", "stage": "serving"}) for d in days]
    import_exports(ctx, [write_csv(tmp_path / "bill.csv", rows)])
    second = run_check(ctx, "m1", now=now + timedelta(hours=1))
    assert second.decision is not None
    assert second.decision.details["running_cost_source"] == "ledger"
    assert float(second.decision.details["running_cost_per_day"]) == pytest.approx(12.0)
    stored = ctx.store.latest_decision("m1")
    assert stored is not None and stored.details == second.decision.details


def test_the_trainer_gets_the_retrains_mlflow_run_id(tmp_path: Path) -> None:
    ctx = _setup(
        tmp_path,
        make_rows(3000, T0, seed=12, flip=True),
        trainer={"callable": "tests.fakes:tagging_trainer", "window_hours": 168},
    )
    out = run_check(ctx, "m1")
    assert out.retrain_id is not None
    run_retrain(ctx, out.retrain_id)
    row = ctx.store.retrain(out.retrain_id)
    assert [row.mlflow_run_id] == TAGGED_RUNS and row.mlflow_run_id == "run-m1-1"
    assert ctx.registry.resolve("m1", "champion").run_id == row.mlflow_run_id  # the version was logged in that run

