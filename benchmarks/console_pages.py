"""Console page times on PostgreSQL: the fleet page and one model page for 1,000 models x 500 checks.

Loads a fresh PostgreSQL schema (migrated with the service's own Alembic migrations) with
``--models`` models of ``--checks`` finished checks each, one decision per check, a retrain every
25 checks and this month's budgets. Each check stores signals shaped like a real check's (the
metric with its interval, the drift report of ``--columns`` columns: about 2.2 KB as JSON for the
demo's 8 columns). Then it serves the fleet page (``/``, every model) and one model page
(``/models/m0007``: 500 checks drawn as three timelines) through the app in this process, with
no network in between, and prints the median and 90th percentile wall time of each over
``--repeat`` requests after two warm-ups. The schema is dropped at the end.

    .venv/bin/python benchmarks/console_pages.py                    # 1,000 x 500 on the test database
    .venv/bin/python benchmarks/console_pages.py --models 200 --checks 100
    RETRAIN_BENCH_POSTGRES_URL=postgresql+psycopg://... .venv/bin/python benchmarks/console_pages.py
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

POSTGRES_URL = os.environ.get("RETRAIN_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEAMS = [f"team-{i}" for i in range(10)]
TARGET_MS = 300.0


def signals_of(i: int, columns: int, metric: float, source: str) -> dict[str, Any]:
    """A check's signals record, shaped as ``controller.reactors.check`` stores it."""
    drift_cols = [
        {
            "column": f"feature_{c:02d}",
            "kind": "numerical" if c % 3 else "categorical",
            "test": "wasserstein" if c % 3 else "jensenshannon",
            "score": 0.01 + 0.013 * ((i + c) % 11),
            "threshold": 0.1,
            "drifted": (i + c) % 11 > 6,
            "status": "ok",
        }
        for c in range(columns)
    ]
    drifted = sum(c["drifted"] for c in drift_cols)
    return {
        "metric": "accuracy",
        "baseline": 0.9,
        "current": metric,
        "source": source,
        "current_low": metric - 0.012,
        "current_high": metric + 0.012,
        "drift_share": drifted / columns,
        "dataset_drift": drifted / columns > 0.5,
        "quality_failures": [],
        "n_rows": 6000,
        "decay_points_per_day": 0.05,
        "window_fresh_share": 1.0,
        "fresh_window_in_days": 0.0,
        "regime_days": 21.0,
        "regime_remaining": [],
        "challenger_version": None,
        "challenger_current": None,
        "version": "3",
        "drift": {
            "dataset": {"drift_share": drifted / columns, "n_drifted": drifted, "n_columns": columns, "drifted": False},
            "columns": drift_cols,
        },
    }


def load(url: str, models: int, checks: int, columns: int, now: datetime) -> float:
    """Write the history with COPY; returns the seconds it took."""
    from controller.adapters.store.store import Store

    started = time.perf_counter()
    store = Store(url)
    store.migrate()
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        # The history is consistent by construction; checking 500,000 foreign keys one trigger call
        # each would take most of the load (a superuser setting, as the test database's owner has).
        cur.execute("SET session_replication_role = replica")
        start = now - timedelta(hours=6 * checks)
        check_id = 0
        with cur.copy(  # type: ignore[attr-defined]
            "COPY checks (id, model, status, started_at, finished_at, version, n_rows, drift_share, metric, "
            "metric_value, metric_source, metric_baseline, signals) FROM STDIN"
        ) as copy:
            for m in range(models):
                for i in range(checks):
                    check_id += 1
                    at = start + timedelta(hours=6 * i, minutes=m % 60)
                    metric = 0.9 - 0.0004 * (i % 60) - 0.00001 * m
                    source = "realized" if i % 4 == 0 else "estimated"
                    s = signals_of(i + m, columns, metric, source)
                    copy.write_row(
                        (
                            check_id,
                            f"m{m:04d}",
                            "done",
                            at,
                            at + timedelta(seconds=2),
                            "3",
                            6000,
                            s["drift_share"],
                            "accuracy",
                            metric,
                            source,
                            0.9,
                            json.dumps(s),
                        )
                    )
        with cur.copy(  # type: ignore[attr-defined]
            "COPY decisions (id, check_id, model, version, action, reasons, summary, numbers, signal_source, "
            "decided_at, needs_approval) FROM STDIN"
        ) as copy:
            check_id = 0
            for m in range(models):
                for i in range(checks):
                    check_id += 1
                    at = start + timedelta(hours=6 * i, minutes=m % 60)
                    trigger = i % 25 == 24
                    loss = 10.0 * ((i + m) % 60) + m % 97
                    numbers = {
                        "drop_points": loss / 100,
                        "loss_per_day": loss,
                        "expected_recovery": loss * 25,
                        "retrain_cost": 400.0,
                        "net_value": loss * 25 - 400.0,
                        "roi": loss * 25 / 400 - 1,
                        "budget_left": 1500.0,
                        "flip_drop_points": 1.6,
                        "horizon_days": 30.0,
                    }
                    action, reason = (
                        ("TRIGGER", "decay_costs_more_than_retrain") if trigger else ("DEFER", "not_worth_it")
                    )
                    copy.write_row(
                        (
                            check_id,
                            check_id,
                            f"m{m:04d}",
                            "3",
                            action,
                            json.dumps([reason]),
                            f"{action}: {reason}",
                            json.dumps(numbers),
                            "estimated",
                            at,
                            False,
                        )
                    )
        with cur.copy(  # type: ignore[attr-defined]
            "COPY retrain_runs (idempotency_key, model, decision_id, state, cost_estimate, actual_cost, "
            "cost_anomaly, champion_version, challenger_version, champion_metric, challenger_metric, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for m in range(models):
                for i in range(24, checks, 25):
                    at = start + timedelta(hours=6 * i, minutes=m % 60)
                    copy.write_row(
                        (
                            f"retrain:m{m:04d}:{i}",
                            f"m{m:04d}",
                            m * checks + i + 1,
                            "promoted",
                            400.0,
                            430.0,
                            False,
                            "2",
                            "3",
                            0.88,
                            0.9,
                            at,
                            at,
                        )
                    )
        month = now.strftime("%Y-%m")
        with cur.copy("COPY budgets (scope, month, spent) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for m in range(models):
                copy.write_row((f"model:m{m:04d}", month, 400.0 * (m % 3)))
            for team in TEAMS:
                copy.write_row((f"team:{team}", month, 4000.0))
        for table in ("checks", "decisions"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        store.dispose()
    return time.perf_counter() - started


def timed(client: Any, path: str, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each request (CPU: this process, the app and its rendering; the
    database's own work is in its process)."""
    for _ in range(2):
        assert client.get(path).status_code == 200
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        r = client.get(path)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        assert r.status_code == 200, r.text[:500]
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", metavar="SCHEMA", help="Load into this schema and keep it (to time again).")
    parser.add_argument("--reuse", metavar="SCHEMA", help="Time on a schema kept by --keep (same sizes).")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for tests.fakes

    from fastapi.testclient import TestClient

    from controller.adapters.store.store import Store
    from controller.config import DataConfig, FileSource, ModelConfig, ServiceConfig
    from controller.core.economics import EconomicsConfig
    from controller.reactors.context import Context
    from controller.web.app import create_app
    from tests.fakes import InMemoryRegistry

    now = datetime.now(UTC)
    schema = args.reuse or args.keep or f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_URL)
    if not args.reuse:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        seconds = 0.0 if args.reuse else load(url, args.models, args.checks, args.columns, now)
        econ = EconomicsConfig(value_per_point=2.0, traffic_per_day=50_000, compute_rate_per_hour=8.0)
        models = {
            f"m{m:04d}": ModelConfig(
                name=f"m{m:04d}",
                registered_model=f"m{m:04d}",
                owner=f"owner-{m % 40}",
                team=TEAMS[m % len(TEAMS)],
                data=DataConfig(source=FileSource(path="unused/*.parquet")),
                economics=econ,
            )
            for m in range(args.models)
        }
        service = ServiceConfig(cache_dir=None, team_budgets=dict.fromkeys(TEAMS, 20_000.0))
        store = Store(url)
        client = TestClient(
            create_app(Context(service, models, store, InMemoryRegistry()), run_check=lambda m, k: None)
        )
        gc.freeze()  # as ``retrainctl serve`` does once the app is built
        load_before = os.getloadavg()[0]
        fleet = timed(client, "/", args.repeat)
        model = timed(client, "/models/m0007", args.repeat)
        load_after = os.getloadavg()[0]
        size_fleet, size_model = len(client.get("/").content), len(client.get("/models/m0007").content)
        with store.engine.connect() as conn:
            db_bytes = conn.execute(
                sa.text(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s"
                ),
                {"s": schema},
            ).scalar()
        store.dispose()
    finally:
        if not (args.keep or args.reuse):
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    def line(name: str, times: tuple[list[float], list[float]], size: int) -> str:
        ms, cpu = times
        q = statistics.quantiles(ms, n=10)
        med = statistics.median(ms)
        verdict = "meets" if med < TARGET_MS else "MISSES"
        return (
            f"{name:<26} median {med:7.1f} ms  p90 {q[8]:7.1f} ms  "
            f"(CPU of this process {statistics.median(cpu):.0f} ms; "
            f"{size / 1024:.0f} KB of HTML)  "
            f"{verdict} < {TARGET_MS:.0f} ms"
        )

    print(
        f"PostgreSQL, {args.models:,} models x {args.checks} checks ({args.models * args.checks:,} checks and "
        f"decisions, {args.columns} drift columns per check; {(db_bytes or 0) / 2**20:,.0f} MB), "
        f"loaded in {seconds:.0f} s"
    )
    print(
        f"server-side wall time over {args.repeat} requests each (in-process ASGI, no network), after 2 warm-ups; "
        f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores:"
    )
    print(line("fleet page /", fleet, size_fleet))
    print(line("model page /models/m0007", model, size_model))


if __name__ == "__main__":
    main()
