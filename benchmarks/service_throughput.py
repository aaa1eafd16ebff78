"""Service throughput: model checks per second end to end, and MLflow tag writes per second.

Setup (cached in --workdir, reused when N matches): N watched models, each with its own Parquet
file of 10,000 rows x 20 columns (16 numerical, 4 categorical) in the current week and its
labels; one trained classifier with its baseline (reference profile, metrics, scores) logged
once in a local MLflow store (SQLite + local artifacts), and N registered models whose version 1
points at that run and carries the champion alias -- so every model resolves, loads its stored
profile and scores its own rows, without N training runs in the setup.

Measurement 1 (checks/s): a fresh audit store on the machine's Postgres, real Celery worker
processes (``retrainctl worker``) on the machine's Redis, and one beat tick: the ``retrain.tick``
task beat sends at start, which finds all N models due and fans out one check each. Checks per
second = N / (time from the tick being sent to the N-th decision committed). The first tick is
cold: every pool process fetches each model version it meets from MLflow (model, baseline,
training history), and the machine's cache folder (``cache_dir``, fresh per run) starts empty.
Later ticks (``--ticks``), on due-again models, are the steady state of long-running workers: a
model lands on any pool process, which loads what it has not met yet from the machine's cache.
Every tick is printed.

Measurement 2 (tag writes/s): an ``mlflow server`` on SQLite (as in the issue's reference
point), M model versions, and one outbox item of 11 ``retrain.*`` tags per version delivered by
a real worker on the notify queue; tag writes per second = tags written / delivery time.

    .venv/bin/python benchmarks/service_throughput.py --models 1000 --workers 1 --concurrency 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ruff: noqa: E402 (the project root goes on the path first)
from controller.adapters.registry.base import TrainingRecord
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.store.store import Store
from controller.adapters.store.tables import DecisionRow, OutboxRow, utcnow
from controller.adapters.trainers import import_trainer
from controller.config import ModelConfig
from controller.reactors.baseline import build_baseline, features_of

ROWS = 10_000
NUMERIC = [f"x{i}" for i in range(16)]
CATEGORICAL = [f"c{i}" for i in range(4)]
FEATURES = NUMERIC + CATEGORICAL
TEMPLATE = "bench-template"
PG_URL = os.environ.get("RETRAIN_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RETRAIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
CHILD_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def model_name(i: int) -> str:
    """The name of the benchmark's ``i``-th model (its config, data files and store rows)."""
    return f"m{i:05d}"


def rows(rng: np.random.Generator, start: datetime, n: int, first_id: int) -> pd.DataFrame:
    x = rng.normal(0, 1, (n, len(NUMERIC)))
    cats = {c: rng.choice(["a", "b", "c", "d", "e"], n) for c in CATEGORICAL}
    logit = x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] + (cats["c0"] == "a") * 0.7
    seconds = np.sort(rng.uniform(0, 7 * 86400 - 120, n))
    df = pd.DataFrame(x.round(4), columns=NUMERIC)
    for c, v in cats.items():
        df[c] = v
    df.insert(0, "id", np.arange(first_id, first_id + n))
    df.insert(1, "timestamp", [start + timedelta(seconds=float(s)) for s in seconds])
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def model_doc(name: str, registered: str, window_hours: float = 168, growing: bool = False) -> dict[str, Any]:
    # growing: a folder per model, with the week's file and a file of new rows per later tick
    path = f"../data/growing/{name}" if growing else f"../data/{name}.parquet"
    return {
        "name": name,
        "registered_model": registered,
        "owner": "bench@example.com",
        "team": "bench",
        "data": {
            "source": {"kind": "files", "path": path},
            "labels": {"kind": "files", "path": f"../data/{name}-labels.parquet"},
            "window_hours": window_hours,
            "min_labeled_rows": 500,
        },
        "features": FEATURES,
        "schedule": {"every": "1h"},
        "economics": {
            "metric": "accuracy",
            "value_per_point": 2.0,
            "traffic_per_day": 50000,
            "compute_rate_per_hour": 4.0,
            "labeling_cost_per_row": 0.05,
            "labels_per_retrain": 5000,
            "fixed_overhead": 300,
        },
        "trainer": {"callable": "controller.adapters.trainers:sklearn_classifier"},
        "drift": {"categorical": CATEGORICAL},
    }


def setup(work: Path, n: int) -> None:
    """Data, model files and registered versions for ``n`` models; reused when already there."""
    marker = work / "setup.json"
    if marker.exists() and json.loads(marker.read_text()).get("models") == n:
        print(f"setup: reusing {n} models in {work}")
        return
    if work.exists():
        shutil.rmtree(work)
    (work / "data").mkdir(parents=True)
    (work / "models").mkdir()
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    rng = np.random.default_rng(0)
    reference = rows(rng, now - timedelta(days=21), ROWS, 0)
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    import mlflow

    # MLflow's registry store looks logged models up through the global tracking URI.
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    registry = MlflowRegistry(tracking, artifact_root=str(work / "mlartifacts"))
    cfg = ModelConfig.model_validate({**model_doc(TEMPLATE, TEMPLATE), "source_file": str(work / "models" / "x")})
    features = features_of(cfg, list(reference.columns))
    cut = int(len(reference) * 0.7)
    train, holdout = reference.iloc[:cut], reference.iloc[cut:]
    model = import_trainer("controller.adapters.trainers:sklearn_classifier")(train, features=features, target="label")
    baseline = build_baseline(cfg, model, train, holdout, features)
    template = registry.log_version(TEMPLATE, TrainingRecord(model, baseline, {}, {}, 60.0, {}))
    source = registry.client.get_model_version(TEMPLATE, template.version)
    print(f"setup: template version logged in {time.perf_counter() - t0:.1f} s")
    for i in range(n):
        name = model_name(i)
        registered = f"bench-{name}"
        df = rows(np.random.default_rng(1000 + i), now - timedelta(days=7), ROWS, (i + 1) * 10 * ROWS)
        df.drop(columns=["label"]).to_parquet(work / "data" / f"{name}.parquet", index=False)
        df[["id", "label"]].to_parquet(work / "data" / f"{name}-labels.parquet", index=False)
        registry.client.create_registered_model(registered, tags={"owner": "bench@example.com"})
        mv = registry.client.create_model_version(
            registered, str(source.source), run_id=source.run_id, model_id=getattr(source, "model_id", None)
        )
        registry.client.set_registered_model_alias(registered, "champion", mv.version)
        if (i + 1) % 100 == 0:
            print(f"setup: {i + 1}/{n} models ({time.perf_counter() - t0:.0f} s)")
    marker.write_text(json.dumps({"models": n, "created": now.isoformat()}))


def write_models(work: Path, n: int, window_hours: float, growing: bool = False) -> None:
    for i in range(n):
        name = model_name(i)
        doc = model_doc(name, f"bench-{name}", window_hours, growing)
        (work / "models" / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    shutil.rmtree(work / "data" / "growing", ignore_errors=True)  # new rows of an earlier run
    if growing:
        for i in range(n):
            folder = work / "data" / "growing" / model_name(i)
            folder.mkdir(parents=True)
            os.link(work / "data" / f"{model_name(i)}.parquet", folder / "week.parquet")  # the same file


def add_new_rows(work: Path, n: int, tick: int, count: int) -> None:
    """``count`` new rows per model, in the hour before now, as a new file (the week's file and
    the labels stay as they are): the window slides as it does between two hourly checks."""
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    for i in range(n):
        rng = np.random.default_rng([tick, i])
        df = rows(rng, now, count, (i + 1) * 10 * ROWS + ROWS + tick * count).drop(columns=["label"])
        df["timestamp"] = [now - timedelta(seconds=float(s)) for s in np.sort(rng.uniform(1, 3600, count))[::-1]]
        df.to_parquet(work / "data" / "growing" / model_name(i) / f"new{tick}.parquet", index=False)
    print(f"  {count} new rows per model written in {time.perf_counter() - t0:.1f} s (before the tick)")


def write_config(
    work: Path,
    store_url: str,
    tracking: str,
    name: str = "controller.yaml",
    cache_dir: Path | None = None,
    file_cache_mb: int = 4096,
) -> Path:
    path = work / name
    path.write_text(
        yaml.safe_dump(
            {
                "store_url": store_url,
                "mlflow_tracking_uri": tracking,
                "mlflow_artifact_root": str(work / "mlartifacts"),
                "cache_dir": str(cache_dir or fresh_cache(work / "cache")),
                "file_cache_mb": file_cache_mb,
                "broker_url": REDIS_URL,
                "result_backend": REDIS_URL,
                "models_dir": "models",
                "team_budgets": {"bench": 1e9},
                "webhooks": {"backoff_seconds": 1, "max_attempts": 10},
            }
        )
    )
    return path


def fresh_cache(folder: Path) -> Path:
    """An empty machine cache (``cache_dir``), so a cold tick fetches everything from MLflow."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def fresh_schema() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_schema(schema: str) -> None:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def fill_history(store: Store, n: int, hours: int) -> None:
    """``hours`` finished hourly checks per model before the run, each with its decision and
    estimation error, as a service that has run that long holds (a check reads its model's newest
    500 checks, latest decision and 20 estimation errors; how fast depends on the indexes). The
    history ends a day before the run and shows no decay (realized accuracy at the baseline), so
    it moves the forecasts little; its signals documents are about the size of a real check's."""
    columns = [{"column": f"x{i}", "score": 0.01, "note": "x" * 120} for i in range(21)]
    signals = json.dumps({"drift": {"columns": columns}})
    numbers = json.dumps({k: 1.0 for k in ("loss_per_day", "expected_recovered", "cost", "net_value", "roi")})
    t0 = time.perf_counter()
    names = [model_name(i) for i in range(n)]
    args = {"names": names, "hours": hours, "signals": signals, "numbers": numbers}
    # oldest first, so that ids grow with time as the service writes them
    rows = "FROM unnest(CAST(:names AS text[])) m, generate_series(1, :hours) g ORDER BY g DESC, m"
    at = "now() - interval '1 day' - make_interval(hours => g)"
    with store.session() as s:
        s.execute(
            sa.text(
                "INSERT INTO checks (model, version, status, started_at, finished_at, n_rows, drift_share, metric,"
                " metric_value, metric_source, metric_baseline, signals)"
                f" SELECT m, '1', 'done', {at}, {at}, 10000, 0.1, 'accuracy', 0.74 - 0.002 * sin(g), 'realized',"
                f" 0.74, CAST(:signals AS json) {rows}"
            ),
            args,
        )
        s.execute(
            sa.text(
                "INSERT INTO decisions (model, version, action, reasons, summary, numbers, signal_source, decided_at,"
                f" needs_approval) SELECT m, '1', 'DEFER', CAST('[\"drop_not_significant\"]' AS json),"
                f" 'no significant drop', CAST(:numbers AS json), 'realized', {at}, false {rows}"
            ),
            args,
        )
        s.execute(
            sa.text(
                "INSERT INTO estimation_errors (model, metric, estimated, realized, abs_error, created_at)"
                f" SELECT m, 'accuracy', 0.74, 0.74, 0.002, {at} {rows}"
            ),
            args,
        )
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    print(f"history: {hours} past checks per model written in {time.perf_counter() - t0:.0f} s")


def start_worker(work: Path, config: Path, name: str, queues: str, concurrency: int) -> subprocess.Popen[bytes]:
    log = (work / f"{name}.log").open("wb")
    env = {**os.environ, **CHILD_ENV, "RETRAIN_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    args = ["worker", "-Q", queues, "--concurrency", str(concurrency), "-n", f"{name}@%h", "-l", "WARNING"]
    return subprocess.Popen(
        [sys.executable, "-m", "controller.cli.service", *args, "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=work,
        start_new_session=True,
    )


def wait_workers(app: Any, names: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        seen = {next(iter(r)).split("@")[0] for r in replies}
        if set(names) <= seen:
            return
    raise SystemExit(f"workers {names} did not start within {timeout:.0f} s")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def group_cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU seconds of every live process in the workers' process groups (Linux /proc)."""
    groups = {p.pid for p in procs}
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:  # field 5 of stat, the process group
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def machine_cpu_seconds() -> np.ndarray:
    """``[busy, stolen]`` CPU seconds of the whole machine so far: busy is every process here
    (workers, Postgres, Redis...); stolen is the time the host ran something else while this
    virtual machine had work (it slows every figure down and is nobody's here)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, steal = fields[3] + fields[4], fields[7]  # idle + iowait; steal
    return np.array([sum(fields[:8]) - idle - steal, steal]) / os.sysconf("SC_CLK_TCK")


def cpu_line(worker: float, machine: np.ndarray, n: int) -> str:
    """Per check: the workers' CPU, the machine's and what the host stole, in ms."""
    busy, stolen = 1000 * machine / n
    return f"worker CPU {1000 * worker / n:.0f} ms per check, machine {busy:.0f} ms, stolen by the host {stolen:.0f} ms"


def count_tag_items(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).where(OutboxRow.kind == "mlflow_tags")) or 0)


def count_decisions(store: Store, after: int = 0) -> int:
    """Decisions with an id above ``after`` (the history's): a range of the primary key, not a
    count of the whole table, 20 times a second."""
    with store.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).where(DecisionRow.id > after)) or 0)


def one_tick(app: Any, store: Store, target: int, timeout: float, after: int = 0) -> float:
    """Send the tick beat sends; seconds until ``target`` decisions after id ``after`` are committed."""
    t0 = time.perf_counter()
    app.send_task("retrain.tick")
    deadline = t0 + timeout
    while count_decisions(store, after) < target:
        if time.perf_counter() > deadline:
            raise SystemExit(f"only {count_decisions(store, after)} of {target} decisions after {timeout:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - t0


def measure_checks(
    work: Path,
    n: int,
    workers: int,
    concurrency: int,
    timeout: float,
    ticks: int = 2,
    new_rows: int = 0,
    file_cache_mb: int = 4096,
    history: int = 0,
) -> dict[str, float]:
    from workers.app import app, configure

    schema, store_url = fresh_schema()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cache = work / f"cache-{schema}"  # empty: tick 1 fetches everything from MLflow
        config = write_config(
            work, store_url, f"sqlite:///{work / 'mlflow.db'}", cache_dir=cache, file_cache_mb=file_cache_mb
        )
        store = Store(store_url)
        store.migrate()
        if history:
            fill_history(store, n, history)
        with store.session() as s:
            after = int(s.scalar(sa.select(sa.func.max(DecisionRow.id))) or 0)
        redis.Redis.from_url(REDIS_URL).flushdb()
        from controller.config import load_service_config

        configure(app, load_service_config(config))
        names = [f"bench{i}" for i in range(workers)]
        procs = [start_worker(work, config, nm, "checks", concurrency) for nm in names]
        wait_workers(app, names)
        cpu0, all0 = group_cpu_seconds(procs), machine_cpu_seconds()
        cold = one_tick(app, store, n, timeout, after)
        cpu1, all1 = group_cpu_seconds(procs), machine_cpu_seconds()
        print(
            f"tick 1 (cold worker caches): {n} checks in {cold:.1f} s = {n / cold:.1f} checks/s; "
            + cpu_line(cpu1 - cpu0, all1 - all0, n)
        )
        tags_so_far = count_tag_items(store)
        print(f"  version-tag updates queued by tick 1: {tags_so_far} for {n} checks")
        results = {
            "cold_checks_per_s": n / cold,
            "cold_worker_cpu_s_per_check": (cpu1 - cpu0) / n,
            "cold_machine_cpu_s_per_check": (all1 - all0)[0] / n,
            "cold_stolen_cpu_s_per_check": (all1 - all0)[1] / n,
        }
        for tick in range(2, ticks + 1):
            # Make every model due again: the checks so far are moved two schedule intervals back...
            with store.session() as s:
                # ... and their request keys renamed, or this tick would find its schedule slot done.
                s.execute(
                    sa.text(
                        "UPDATE checks SET started_at = started_at - interval '2 hours', "
                        f"request_key = request_key || '-t{tick}' WHERE request_key IS NOT NULL"
                    )
                )
                s.execute(sa.text("UPDATE decisions SET retry_after = NULL WHERE retry_after IS NOT NULL"))
            if new_rows:
                add_new_rows(work, n, tick, new_rows)
            cpu1, all1 = group_cpu_seconds(procs), machine_cpu_seconds()
            warm = one_tick(app, store, tick * n, timeout, after)
            cpu2, all2 = group_cpu_seconds(procs), machine_cpu_seconds()
            print(
                f"tick {tick} (warm workers):       {n} checks in {warm:.1f} s = {n / warm:.1f} checks/s; "
                + cpu_line(cpu2 - cpu1, all2 - all1, n)
            )
            queued = count_tag_items(store)
            print(f"  version-tag updates queued by tick {tick}: {queued - tags_so_far} for {n} checks")
            tags_so_far = queued
            results |= {
                f"tick{tick}_checks_per_s": n / warm,
                f"tick{tick}_worker_cpu_s_per_check": (cpu2 - cpu1) / n,
                f"tick{tick}_machine_cpu_s_per_check": (all2 - all1)[0] / n,
                f"tick{tick}_stolen_cpu_s_per_check": (all2 - all1)[1] / n,
            }
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        actions = store.latest_decisions([model_name(i) for i in range(n)])
        print("decisions:", dict(pd.Series([d.action for d in actions.values()]).value_counts()))
        store.dispose()
        return results
    finally:
        stop(procs)
        drop_schema(schema)
        shutil.rmtree(work / f"cache-{schema}", ignore_errors=True)


def local_context(work: Path, name: str) -> Any:
    """A ``Context`` in this process: a fresh SQLite audit store and machine cache, the local registry."""
    from controller.reactors.context import Context

    (work / f"{name}-audit.db").unlink(missing_ok=True)
    config = write_config(
        work,
        f"sqlite:///{work / f'{name}-audit.db'}",
        f"sqlite:///{work / 'mlflow.db'}",
        f"controller-{name}.yaml",
        cache_dir=fresh_cache(work / f"cache-{name}"),
    )
    return Context.from_config(config)


def machine_reference(repeats: int = 15) -> float:
    """Seconds of CPU a fixed workload takes (sorting a million numbers, 300,000 Python additions),
    the median of ``repeats``: how fast this machine runs right now. The same checks measured up
    to 1.5x apart between runs here; a run's checks/s is read against its reference."""
    data = np.random.default_rng(0).normal(size=1_000_000)
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        np.sort(data)
        total = 0
        for i in range(300_000):
            total += i
        times.append(time.process_time() - t0)
    return float(np.median(times))


def measure_in_process(work: Path, repeats: int = 3) -> dict[str, float]:
    """One check in this process (no Celery, SQLite store): the cost the workers pay per check."""
    from controller.reactors.check import run_check

    ctx = local_context(work, "inprocess")
    run_check(ctx, "m00000")  # warms the caches of this process, as a long-running worker has them
    t0 = time.perf_counter()
    for _ in range(repeats):
        run_check(ctx, "m00000")
    seconds = (time.perf_counter() - t0) / repeats
    print(f"in-process: one warm check takes {seconds * 1000:.0f} ms of one core ({1 / seconds:.2f} checks/s per core)")
    ctx.store.dispose()
    return {"in_process_seconds_per_check": seconds}


def profile_in_process(work: Path, n: int, checks: int, top: int = 25) -> dict[str, float]:
    """CPU time per check of ``controller.service.run_check`` in this process, under cProfile.

    The workers' own cost per check, as process CPU time (wall-clock on a loaded machine is
    inflated by other jobs): a fresh SQLite audit store, then ``checks`` checks of distinct models
    (cold: the first check of each model version in this process, as in a benchmark's first tick),
    then ``checks`` more cycling over the same models (warm: long-running workers), each check at
    a later time so it is a real check that finds the earlier ones in its history.
    """
    import cProfile
    import pstats

    from controller.reactors.check import run_check

    ctx = local_context(work, "profile")
    names = [model_name(i) for i in range(n)]
    now = utcnow()
    run_check(ctx, names[-1], now=now)  # imports, connections: paid once per worker process
    results: dict[str, float] = {}
    for phase, offset in (("cold", 1), ("warm", 2)):
        count = min(n - 1, checks) if phase == "cold" else checks
        profiler = cProfile.Profile()
        c0, t0 = time.process_time(), time.perf_counter()
        profiler.enable()
        for i in range(count):
            run_check(ctx, names[i % (n - 1)], now=now + timedelta(hours=offset, seconds=i))
        profiler.disable()
        cpu, wall = (time.process_time() - c0) / count, (time.perf_counter() - t0) / count
        print(f"===== {phase}: top {top} by cumulative time =====")
        pstats.Stats(profiler).strip_dirs().sort_stats("cumulative").print_stats(top)
        print(f"===== {phase}: top {top} by own time =====")
        pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(top)
        print(
            f"profile {phase}: {count} checks, {cpu * 1000:.1f} ms CPU per check under cProfile "
            f"({wall * 1000:.1f} ms wall; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        results |= {f"profile_{phase}_cpu_s_per_check": cpu, f"profile_{phase}_wall_s_per_check": wall}
    ctx.store.dispose()
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure_tags(work: Path, versions: int, timeout: float) -> dict[str, float]:
    from controller.config import load_service_config
    from workers.app import app, configure

    folder = work / "mlflow-server"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder}/db.sqlite",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=(folder / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    schema, store_url = fresh_schema()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("mlflow server did not start") from None
                time.sleep(0.5)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=url, registry_uri=url)
        run = client.create_run("0")
        for i in range(versions):
            client.create_registered_model(f"tags-{i}")
            client.create_model_version(f"tags-{i}", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        config = write_config(work, store_url, url, "controller-tags.yaml", cache_dir=fresh_cache(work / "cache-tags"))
        store = Store(store_url)
        store.migrate()
        redis.Redis.from_url(REDIS_URL).flushdb()
        configure(app, load_service_config(config))
        now = utcnow()
        for i in range(versions):
            tags = {
                f"retrain.{k}": f"{k}-{i}"
                for k in (
                    "decision",
                    "reason",
                    "summary",
                    "checked_at",
                    "drift_share",
                    "metric",
                    "metric_baseline",
                    "metric_now",
                    "metric_source",
                    "loss_per_day",
                    "net_value",
                )
            }
            store.enqueue("m", "mlflow_tags", f"tags:{i}", {"name": f"tags-{i}", "version": "1", "tags": tags}, now)
        procs = [start_worker(work, config, "notify0", "notify", 1)]
        wait_workers(app, ["notify0"])
        t0 = time.perf_counter()
        app.send_task("retrain.deliver")
        while True:
            counts = store.outbox_counts()
            if counts.get("pending", 0) == 0:
                break
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"tags not delivered after {timeout:.0f} s: {counts}")
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        with store.session() as s:
            delivered = int(s.scalar(sa.select(sa.func.count()).where(OutboxRow.status == "delivered")) or 0)
        written = delivered * 11
        print(
            f"MLflow tags: {written} tag writes to an mlflow server on SQLite in {seconds:.1f} s "
            f"= {written / seconds:.1f} tag writes/s"
        )
        store.dispose()
        return {"tag_writes_per_s": written / seconds}
    finally:
        stop(procs)
        drop_schema(schema)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=1000)
    p.add_argument("--workers", type=int, default=1, help="worker processes (retrainctl worker)")
    p.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    p.add_argument("--tag-versions", type=int, default=40, help="model versions for the tag-write measurement")
    p.add_argument("--workdir", type=Path, default=ROOT / ".retrain" / "bench-service")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--skip-tags", action="store_true")
    p.add_argument("--only-tags", action="store_true", help="measure MLflow tag writes only")
    p.add_argument("--setup-only", action="store_true", help="write the data and register the models, then stop")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="CHECKS",
        help="only profile CHECKS in-process checks (cProfile, CPU time per check), no workers",
    )
    p.add_argument("--ticks", type=int, default=3, help="beat ticks: the first cold, the others on running workers")
    p.add_argument(
        "--window-hours",
        type=float,
        default=168,
        help="check window; 168 = all 10,000 rows of the week, 1 = about 60 rows (the service's own ceiling)",
    )
    p.add_argument(
        "--new-rows",
        type=int,
        default=0,
        metavar="N",
        help="before each later tick, N new rows per model in a new file (as an hour of traffic arrives)",
    )
    p.add_argument(
        "--file-cache-mb",
        type=int,
        default=4096,
        help="the workers' file cache (decoded copies of the data files); 0: decode every read",
    )
    p.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="HOURS",
        help="past hourly checks per model in the store before the run (500 = three weeks; a check reads 500)",
    )
    args = p.parse_args()
    setup(args.workdir, args.models)
    write_models(args.workdir, args.models, args.window_hours, growing=args.new_rows > 0)
    if args.setup_only:
        return
    if args.profile:
        print(json.dumps(profile_in_process(args.workdir, args.models, args.profile)))
        return
    results: dict[str, float] = {}
    if not args.only_tags:
        before = machine_reference()
        print(f"machine reference before: {before * 1000:.0f} ms (a fixed workload; lower is a faster machine)")
        results |= measure_in_process(args.workdir)
        results |= measure_checks(
            args.workdir,
            args.models,
            args.workers,
            args.concurrency,
            args.timeout,
            args.ticks,
            args.new_rows,
            args.file_cache_mb,
            args.history,
        )
        after = machine_reference()
        print(f"machine reference after:  {after * 1000:.0f} ms")
        results |= {"machine_reference_s_before": before, "machine_reference_s_after": after}
    if not args.skip_tags:
        results |= measure_tags(args.workdir, args.tag_versions, args.timeout)
    print(
        json.dumps(
            {
                "models": args.models,
                "window_hours": args.window_hours,
                "new_rows": args.new_rows,
                "file_cache_mb": args.file_cache_mb,
                "workers": args.workers,
                "concurrency": args.concurrency,
                **results,
            }
        )
    )


if __name__ == "__main__":
    main()
