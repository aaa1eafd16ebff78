"""The audit store against a real SQLite file and the machine's PostgreSQL."""

from __future__ import annotations

import dataclasses
import enum
import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from controller.adapters.store.records import to_jsonable
from controller.adapters.store.store import Store
from controller.adapters.store.tables import ModelRow
from controller.core.decision import Action, Decision, Numbers, Reason

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'audit.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    s = Store(url)
    s.migrate()
    yield s
    s.dispose()


def _decision(action: Action = Action.DEFER) -> Decision:
    numbers = Numbers(2.0, 100.0, 2400.0, 500.0, 1900.0, 3.8, 4500.0, 1.2)
    return Decision(
        action, (Reason.PAYS,), "a sentence", numbers, "realized", NOW, retry_after=NOW + timedelta(hours=6)
    )


def test_migrate_twice_is_harmless(store: Store) -> None:
    store.migrate()
    assert store.outbox_counts() == {}


def test_check_decision_outbox_and_retrain_in_one_transaction(store: Store) -> None:
    check_id, done = store.start_check("m", NOW, request_key="m:slot1")
    assert not done
    outbox = [
        ("mlflow_tags", f"tags:{check_id}", {"name": "m", "version": "1", "tags": {"retrain.decision": "X"}}),
        ("webhook", f"webhook:{check_id}", {"type": "retrain.triggered", "model": "m"}),
    ]
    decision_id, retrain_id = store.finish_check(
        check_id,
        "1",
        {"metric": "accuracy", "reading": 0.8, "reading_source": "realized", "n_rows": 10},
        _decision(Action.TRIGGER),
        outbox,
        NOW,
        retrain={"idempotency_key": "k1", "state": "queued"},
    )
    assert retrain_id is not None
    d = store.decisions("m")[0]
    assert (d.id, d.action, d.reasons, d.numbers["net_value"]) == (
        decision_id,
        "TRIGGER",
        ["decay_costs_more_than_retrain"],
        1900.0,
    )
    assert d.decided_at == NOW and d.retry_after == NOW + timedelta(hours=6)
    assert store.outbox_counts() == {"pending": 2}
    assert store.retrain_in_flight("m")
    # The same request again is recognised as done and not redone.
    assert store.start_check("m", NOW, request_key="m:slot1") == (check_id, True)
    # A second retrain with the same idempotency key is refused.
    assert store.create_retrain("m", decision_id, "k1") is None


def test_abandoned_check_is_reopened_under_its_request_key(store: Store) -> None:
    check_id, _ = store.start_check("m", NOW, request_key="m:slot2")
    assert store.abandon_stale_checks("m", NOW + timedelta(minutes=1)) == 1
    again, done = store.start_check("m", NOW + timedelta(minutes=2), request_key="m:slot2")
    assert (again, done) == (check_id, False)
    assert store.checks("m")[0].status == "running"


def test_claim_retrain_has_one_winner(store: Store) -> None:
    rid = store.create_retrain("m", None, "key")
    assert rid is not None
    assert store.claim_retrain(rid, ["queued"], "training")
    assert not store.claim_retrain(rid, ["queued"], "training")


def test_budget_is_charged_atomically_by_concurrent_workers(store: Store) -> None:
    caps: dict[str, float | None] = {"model:m": 1000.0, "team:t": None}
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        ok = store.charge(caps, 150.0, NOW)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 6  # 6 x 150 = 900 <= 1000 < 1050
    assert store.spent("model:m", NOW) == pytest.approx(900.0)
    assert store.spent("team:t", NOW) == pytest.approx(900.0)
    assert store.spent("model:m", NOW + timedelta(days=40)) == 0.0  # a new month starts from zero


def test_failed_charge_charges_no_scope(store: Store) -> None:
    assert store.charge({"team:t": None, "model:m": 100.0}, 80.0, NOW)
    assert not store.charge({"team:t": None, "model:m": 100.0}, 80.0, NOW)
    assert store.spent("team:t", NOW) == pytest.approx(80.0)


def test_outbox_lease_retry_and_dead_letter(store: Store) -> None:
    store.enqueue("m", "webhook", "w1", {"type": "retrain.deferred"}, NOW)
    store.enqueue("m", "webhook", "w1", {"type": "retrain.deferred"}, NOW)  # deduplicated
    first = store.claim_outbox(NOW)
    assert len(first) == 1
    assert store.claim_outbox(NOW) == []  # leased to the first caller
    store.outbox_failed(first[0].id, "HTTP 500", retry_at=NOW + timedelta(seconds=5))
    assert store.claim_outbox(NOW + timedelta(seconds=4)) == []
    again = store.claim_outbox(NOW + timedelta(seconds=6))
    assert [i.id for i in again] == [first[0].id]
    store.outbox_failed(first[0].id, "HTTP 500", retry_at=None)
    assert store.outbox_counts() == {"dead": 1}
    assert store.outbox_items("dead")[0].attempts == 2


def test_overrides_expire_and_are_consumed(store: Store) -> None:
    oid = store.add_override("m", "approve", "risk-lead", "quarter end", NOW + timedelta(hours=1))
    assert store.active_override("m", "approve", NOW) is not None
    assert store.active_override("m", "approve", NOW + timedelta(hours=2)) is None
    store.consume_override(oid, NOW)
    assert store.active_override("m", "approve", NOW) is None


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        store.start_check("m", datetime(2026, 1, 1))


def test_snapshot_history_and_last_checks_match_the_single_reads(store: Store) -> None:
    first, _ = store.start_check("m", NOW - timedelta(hours=2))
    signals = {"n_rows": 10, "metric": "accuracy", "reading": 0.7, "reading_source": "realized", "baseline": 0.8}
    store.finish_check(first, "1", {**signals, "change_at": NOW.isoformat()}, _decision(), [], NOW)
    second, _ = store.start_check("m", NOW - timedelta(hours=1))
    store.finish_check(
        second, "1", {**signals, "reading_source": "none", "baseline": None, "reading": None}, _decision(), [], NOW
    )
    store.start_check("m", NOW)  # still running: not in the history
    store.start_check("other", NOW - timedelta(minutes=5))
    store.charge({"model:m": None, "team:t": None}, 12.5, NOW)
    veto = store.add_override("m", "veto", "ops", "freeze", NOW + timedelta(days=1))

    history = store.check_history("m")
    assert [(c.source, c.baseline, c.metric_value, c.version) for c in history] == [
        ("none", None, None, "1"),
        ("realized", 0.8, 0.7, "1"),
    ]
    assert history[1].change_at == NOW.isoformat()
    assert store.last_check_times() == {"m": NOW, "other": NOW - timedelta(minutes=5)}

    snap = store.model_snapshot("m", "t", NOW)
    assert snap.latest_decision is not None and snap.latest_decision.id == store.latest_decisions()["m"].id
    assert snap.latest_decision.id == store.latest_decision("m").id  # type: ignore[union-attr]
    assert snap.veto is not None and snap.veto.id == veto and snap.approval is None
    assert (snap.spent_this_month, snap.team_spent_this_month) == (12.5, 12.5)
    assert snap.retrains == [] and not snap.retrain_in_flight


def test_one_snapshot_holds_the_history_series_and_estimation_errors_a_check_reads(store: Store) -> None:
    fields = ("reg-m", "o@example.com", "t", "purpose")
    values = [(0.80, "1"), (0.70, "2"), (0.75, "1")]
    for i, (value, version) in enumerate(values):
        check_id, _ = store.start_check("m", NOW + timedelta(hours=i), model_row=fields)
        signals = {"metric": "accuracy", "reading": value, "reading_source": "realized", "baseline": 0.9}
        store.finish_check(
            check_id, version, signals, _decision(), [], NOW, estimation_error=("accuracy", value + 0.01 * i, value)
        )
    other, _ = store.start_check("m", NOW + timedelta(hours=5))
    mae = {"metric": "mae", "reading": 3.0, "reading_source": "realized"}
    store.finish_check(other, "1", mae, _decision(), [], NOW)

    snap = store.model_snapshot("m", "t", NOW, metric="accuracy", history_limit=500)
    assert snap.history == store.check_history("m")
    assert [c.metric for c in snap.history] == ["mae", "accuracy", "accuracy", "accuracy"]
    assert snap.estimation_errors == pytest.approx(store.estimation_errors("m", "accuracy"))
    assert snap.estimation_errors == pytest.approx([0.02, 0.01, 0.0])
    for version in (None, "1", "2"):
        assert snap.metric_series("accuracy", version=version) == store.metric_series("m", "accuracy", version=version)
    assert store.model_snapshot("m", "t", NOW).history == []  # only read when asked for
    with store.session() as s:
        row = s.get_one(ModelRow, "m")
        assert (row.registered_model, row.owner, row.team, row.business_purpose) == fields


def test_a_model_row_is_rewritten_only_when_it_changed(store: Store) -> None:
    store.start_check("m", NOW, model_row=("reg", "a@example.com", "t", None))
    with store.session() as s:
        s.get_one(ModelRow, "m").owner = "changed-elsewhere"
    store.start_check("m", NOW, model_row=("reg", "a@example.com", "t", None))  # unchanged: not written
    with store.session() as s:
        assert s.get_one(ModelRow, "m").owner == "changed-elsewhere"
    store.start_check("m", NOW, model_row=("reg", "b@example.com", "t", None))  # changed config: written
    with store.session() as s:
        assert s.get_one(ModelRow, "m").owner == "b@example.com"


def test_last_check_is_the_newest_checks_time_status_and_key(store: Store) -> None:
    assert store.last_check("m") is None
    first, _ = store.start_check("m", NOW - timedelta(hours=1), request_key="m:1")
    store.finish_check(first, "1", {"n_rows": 1}, _decision(), [], NOW)
    assert store.last_check("m") == (NOW - timedelta(hours=1), "done", "m:1")
    store.start_check("m", NOW)
    newest = store.checks("m", limit=1)[0]
    assert store.last_check("m") == (newest.started_at, newest.status, newest.request_key) == (NOW, "running", None)


def test_migration_0002_moves_the_history_fields_of_existing_checks_into_columns(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    migrations = Path(__file__).parents[1] / "controller" / "adapters" / "store" / "migrations"
    cfg.set_main_option("script_location", str(migrations))
    cfg.set_main_option("sqlalchemy.url", store.url)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        signals = '{"baseline": 0.9, "change_at": "2026-11-20T00:00:00+00:00", "current": 0.8}'
        conn.execute(
            sa.text(
                "INSERT INTO checks (model, status, started_at, metric, metric_value, metric_source, signals) "
                "VALUES ('m', 'done', '2026-11-28 12:00:00', 'accuracy', 0.8, 'realized', :s)"
            ),
            {"s": signals},
        )
    store.migrate()
    [point] = store.check_history("m")
    assert (point.baseline, point.change_at, point.metric_value) == (0.9, "2026-11-20T00:00:00+00:00", 0.8)
    store.dispose()


def test_the_migrations_build_the_schema_the_models_declare(store: Store) -> None:
    """Alembic's comparison of the migrated database with the models finds nothing to change:
    every index a model declares, the (model, id) ones included, is built by a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from controller.adapters.store.tables import Base

    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("checks")}
    assert differences == []
    assert "ix_checks_model_id" in indexes and "ix_checks_model" not in indexes


def test_a_checks_reads_walk_the_model_id_indexes_on_postgres(postgres_url: str) -> None:
    """With a long history (here 100 models x 1,500 checks), PostgreSQL answers every per-check read
    of the newest rows from a ``(model, id)`` index, not by sorting or filtering the model's
    whole history (the plan of each statement the snapshot and the beat run, after ANALYZE)."""
    from controller.adapters.store.sql import NEWEST_CHUNK, _newest_statement
    from controller.adapters.store.store import _snapshot_queries
    from controller.adapters.store.tables import CheckRow, DecisionRow

    store = Store(postgres_url)
    store.migrate()
    with store.engine.begin() as conn:
        rows = "FROM generate_series(0, 99) m, generate_series(1, 1500) g ORDER BY g DESC, m"
        conn.execute(
            sa.text(
                "INSERT INTO checks (model, status, started_at, metric, metric_value, signals) SELECT 'm' || m,"
                f" 'done', now() - make_interval(hours => g), 'accuracy', 0.8, CAST('{{}}' AS json) {rows}"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO decisions (model, action, reasons, summary, numbers, signal_source, decided_at,"
                " needs_approval) SELECT 'm' || m, 'DEFER', CAST('[]' AS json), '', CAST('{}' AS json), 'realized',"
                f" now(), false {rows}"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO estimation_errors (model, metric, estimated, realized, abs_error, created_at)"
                f" SELECT 'm' || m, 'accuracy', 0.8, 0.8, 0.0, now() {rows}"
            )
        )
        conn.execute(sa.text("ANALYZE"))
        q = _snapshot_queries()
        reads = {
            "ix_checks_model_id": (q["history"], {"model": "m7", "limit": 500}),
            "ix_decisions_model_id": (q["latest_decision"], {"model": "m7"}),
            "ix_estimation_errors_model_metric_id": (
                q["estimation_errors"],
                {"model": "m7", "metric": "accuracy", "limit": 20},
            ),
        }
        for table in (CheckRow, DecisionRow):
            names = {f"m{i}": f"m{i % 10}" for i in range(NEWEST_CHUNK)}
            reads[f"ix_{table.__tablename__}_model_id "] = (_newest_statement(table, ("model",)), names)
        for index, (statement, params) in reads.items():
            compiled = statement.compile(conn, compile_kwargs={"render_postcompile": True})
            plan = "\n".join(
                r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.construct_params(params))
            )
            assert index.strip() in plan and "Sort" not in plan, plan
    store.dispose()


def test_the_newest_rows_of_named_models_match_the_whole_table_read(store: Store) -> None:
    """``last_checks``, ``last_check_times`` and ``latest_decisions`` of named models (one index
    step per model, in statements of ``NEWEST_CHUNK``) give what the read of every model gives;
    a name given twice counts once and a model never checked is absent."""
    from controller.adapters.store.sql import NEWEST_CHUNK

    names = [f"m{i}" for i in range(NEWEST_CHUNK + 3)]  # more than one statement's worth
    for i, name in enumerate(names):
        for k in range(1 + i % 3):
            check_id, _ = store.start_check(name, NOW + timedelta(minutes=10 * k + i), request_key=f"{name}:{k}")
            if k < i % 3:  # the newest check of each model stays running
                store.finish_check(check_id, "1", {"n_rows": 1}, _decision(), [], NOW + timedelta(minutes=10 * k))
    asked = [*names, names[0], "never-checked"]
    assert store.last_check_times(asked) == store.last_check_times()
    assert store.last_check_times(asked)[names[2]] == NOW + timedelta(minutes=22)
    assert store.last_checks(asked) == {
        name: (NOW + timedelta(minutes=10 * (i % 3) + i), "running", f"{name}:{i % 3}") for i, name in enumerate(names)
    }
    by_name = {name: d.id for name, d in store.latest_decisions(asked).items()}
    assert by_name == {name: d.id for name, d in store.latest_decisions().items()}
    assert set(by_name) == {name for i, name in enumerate(names) if i % 3}  # models with a finished check
    assert store.last_checks([]) == {} and store.latest_decisions([]) == {}


def test_status_reads_of_many_models_match_the_per_model_reads(store: Store) -> None:
    """``latest_check_summaries`` (one index step per model) gives each model's newest check, as
    ``checks(limit=1)`` does, and ``models_retraining`` the models ``retrain_in_flight`` names."""
    names = [f"m{i}" for i in range(5)]
    for i, name in enumerate(names):
        for k in range(1 + i % 3):
            check_id, _ = store.start_check(name, NOW + timedelta(minutes=10 * k))
            if i != 4 or k == 0:  # m4's newest check is still running
                signals = {
                    "n_rows": 9,
                    "drift_share": 0.1 * k,
                    "metric": "accuracy",
                    "reading": 0.5 + k,
                    "reading_source": "realized",
                }
                store.finish_check(check_id, "1", signals, _decision(), [], NOW)
    store.create_retrain("m1", None, "k1")
    done = store.create_retrain("m2", None, "k2")
    assert done is not None
    store.update_retrain(done, state="promoted")
    summaries = store.latest_check_summaries([*names, "never-checked"])
    assert set(summaries) == set(names)
    for name in names:
        newest = store.checks(name, limit=1)[0]
        got = summaries[name]
        assert (got.model, got.status, got.metric, got.metric_value, got.metric_source, got.drift_share) == (
            name,
            newest.status,
            newest.metric,
            newest.metric_value,
            newest.metric_source,
            newest.drift_share,
        )
    assert summaries["m2"].metric_value == 2.5 and summaries["m4"].status == "running"
    assert store.models_retraining() == {n for n in names if store.retrain_in_flight(n)} == {"m1"}
    assert store.latest_check_summaries([]) == {}


def _to_jsonable_reference(value: Any) -> Any:
    """``to_jsonable`` before its fast path for plain types: the one it must still agree with."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _to_jsonable_reference(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _to_jsonable_reference(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable_reference(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


@pytest.mark.parametrize("seed", range(50))
def test_to_jsonable_gives_what_it_gave_before_its_fast_path(seed: int) -> None:
    rng = random.Random(seed)

    @dataclasses.dataclass
    class Point:
        x: Any
        y: Any

    class Color(enum.Enum):
        RED = "red"

    leaves = [
        lambda: rng.choice([float("nan"), float("inf"), -float("inf"), rng.random()]),
        lambda: np.float64(rng.choice([float("nan"), 0.5])),
        lambda: rng.randint(-5, 5),
        lambda: rng.choice([True, False, None, "text", Color.RED]),
        lambda: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 99)),
    ]

    def build(depth: int) -> Any:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(leaves)()
        kind = rng.randrange(4)
        if kind == 0:
            return {rng.choice(["a", 1, 2.5, "b"]): build(depth - 1) for _ in range(rng.randint(0, 4))}
        if kind == 1:
            return [build(depth - 1) for _ in range(rng.randint(0, 4))]
        if kind == 2:
            return tuple(build(depth - 1) for _ in range(rng.randint(0, 3)))
        return Point(build(depth - 1), build(depth - 1))

    value = build(5)
    got, want = to_jsonable(value), _to_jsonable_reference(value)
    assert json.dumps(got, sort_keys=True, default=repr) == json.dumps(want, sort_keys=True, default=repr)


def test_the_newest_revision_read_off_the_scripts_is_alembics_single_head() -> None:
    """A read-only command migrates only when the store is behind; it reads the head without Alembic."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from controller.adapters.store.store import _head_revision

    folder = Path(__file__).parents[1] / "controller" / "adapters" / "store" / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert heads == [_head_revision(folder / "versions")]
