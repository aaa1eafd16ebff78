"""A 7-day window check on a 90-day hive-partitioned dataset in an S3 bucket, against the same
check on local files.

Setup (in --workdir, kept between runs with the same sizes): ``--days`` days of prediction rows
(``--rows`` in all; id, timestamp, three numbers, a category) and their labels, one Parquet file
per day and kind, hive style (``rows/dt=YYYY-MM-DD/part-0.parquet``, ``labels/dt=.../part-0.parquet``),
with row groups of 50,000 rows. A logistic model trained on rows of the first days is logged with
its baseline in a local MLflow store (SQLite).

Measurement: moto's standalone S3 server (``moto_server``, another process on 127.0.0.1) is
started and the dataset uploaded to a bucket. Then ``run_check`` (the service's own check: window
read, quality, drift, scoring, realized performance, decision, audit store) runs for a model whose
source and labels are ``s3://bench/rows/`` and ``s3://bench/labels/``, and for a model whose
source and labels are the local folders: each twice, with a fresh machine file cache, so the first
check decodes every file and the second finds the window unchanged. The S3 server's request log
gives which objects each check asked for (GET/HEAD by key) and how many listings it made.

    .venv/bin/python benchmarks/object_store_window.py --workdir /tmp/object-store-bench

Figures printed: rows in the window, seconds per check (bucket and local, first and second),
their ratio, objects read per day, listings; and whether both sources decided alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks.s3server import TEST_CREDENTIALS, S3Server

END = datetime(2026, 11, 30, tzinfo=UTC)
COLORS = np.array(["red", "green", "blue"])


def day_rows(day: datetime, n: int, first_id: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n), rng.normal(0, 1, n)
    seconds = np.sort(rng.uniform(0, 86_400, n))
    logit = 2.0 * x1 + 2.0 * x2
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "timestamp": pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s"),
            "x1": x1,
            "x2": x2,
            "noise": rng.normal(0, 1, n),
            "color": pd.Categorical(COLORS[rng.integers(0, 3, n)], categories=COLORS).astype(str),
            "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64),
        }
    )


def generate(data: Path, rows: int, days: int) -> None:
    """The dataset on local disk (skipped when a complete one of the same size is there)."""
    stamp = data / "_complete.json"
    want = {"rows": rows, "days": days}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return
    shutil.rmtree(data, ignore_errors=True)
    per_day = rows // days
    for i in range(days):
        day = END - timedelta(days=days - i)
        frame = day_rows(day, per_day, i * per_day, seed=i)
        for kind, part in (("rows", frame.drop(columns="label")), ("labels", frame[["id", "label"]])):
            folder = data / kind / f"dt={day:%Y-%m-%d}"
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(part, preserve_index=False)
            pq.write_table(table, folder / "part-0.parquet", row_group_size=50_000)
    stamp.write_text(json.dumps(want))


def upload(data: Path, bucket: str) -> float:
    from controller.adapters.objectstore import store_for

    fs = store_for("s3://x").fs
    fs.mkdir(bucket)
    started = time.perf_counter()
    files = sorted(p for p in data.rglob("*.parquet"))
    for p in files:
        fs.put_file(str(p), f"{bucket}/{p.relative_to(data).as_posix()}")
    return time.perf_counter() - started


def configs(work: Path, name: str, rows: str, labels: str, endpoint: str | None) -> Path:
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "models").mkdir(parents=True)
    service = {
        "store_url": f"sqlite:///{folder / 'audit.db'}",
        "mlflow_tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
        "mlflow_artifact_root": str(work / "mlartifacts"),
        "cache_dir": str(folder / "cache"),
        "file_cache_mb": 8192,
        "policy": {"cooldown_hours": 0, "monthly_budget": 10_000},
    }
    (folder / "controller.yaml").write_text(yaml.safe_dump(service))
    extra = {"endpoint_url": endpoint} if endpoint else {}
    model = {
        "name": "bench",
        "registered_model": "bench",
        "owner": "bench@example.com",
        "team": "bench",
        "business_purpose": "benchmark",
        "data": {
            "source": {"kind": "files", "path": rows, **extra},
            "labels": {"kind": "files", "path": labels, **extra},
            "window_hours": 168,
            "min_labeled_rows": 200,
        },
        "economics": {
            "metric": "accuracy",
            "value_per_point": 5.0,
            "traffic_per_day": 100_000,
            "compute_rate_per_hour": 2.0,
        },
        "drift": {"categorical": ["color"]},
    }
    (folder / "models" / "bench.yaml").write_text(yaml.safe_dump(model))
    return folder / "controller.yaml"


def register(work: Path, config: Path, data: Path) -> None:
    """Version 1 of ``bench`` with its baseline, once per workdir."""
    from controller.adapters.registry.base import TrainingRecord
    from controller.adapters.trainers import sklearn_classifier
    from controller.reactors.baseline import build_baseline, features_of
    from controller.reactors.context import Context

    marker = work / "registered"
    if marker.exists():
        return
    ctx = Context.from_config(config)
    cfg = ctx.model("bench")
    first = sorted((data / "rows").iterdir())[:2]
    ref = pd.concat([pd.read_parquet(d / "part-0.parquet") for d in first], ignore_index=True).iloc[:100_000]
    labels = pd.concat([pd.read_parquet(data / "labels" / d.name / "part-0.parquet") for d in first]).iloc[:100_000]
    ref["label"] = labels["label"].to_numpy()
    features = features_of(cfg, list(ref.columns))
    clf = sklearn_classifier(ref.iloc[:80_000], features=features, target="label")
    baseline = build_baseline(cfg, clf, ref.iloc[:80_000], ref.iloc[80_000:], features)
    version = ctx.registry.log_version("bench", TrainingRecord(clf, baseline, {}, {}, 60.0))
    ctx.registry.set_alias("bench", "champion", version.version)
    marker.write_text(version.version)


def timed_checks(config: Path, server: S3Server | None) -> list[dict[str, Any]]:
    """Two checks at END in one process with the file cache of ``config`` (emptied first)."""
    from controller.reactors.check import run_check
    from controller.reactors.context import Context

    ctx = Context.from_config(config, clock=lambda: END)
    assert ctx.file_cache is not None
    shutil.rmtree(ctx.file_cache.folder, ignore_errors=True)
    ctx.registry.resolve("bench", "champion")  # MLflow warm-up, outside the timings
    out = []
    for attempt in ("first", "second"):
        mark = server.mark() if server else 0
        started = time.perf_counter()
        result = run_check(ctx, "bench", now=END)
        seconds = time.perf_counter() - started
        figures: dict[str, Any] = {
            "check": attempt,
            "seconds": round(seconds, 2),
            "n_rows": result.signals["n_rows"],
            "action": result.decision.action.value if result.decision else None,
            "signals": result.signals,
        }
        if server is not None:
            reqs = server.requests(mark)
            reads = [r for r in reqs if r.key and r.method in ("GET", "HEAD")]
            figures["object_requests"] = len(reads)
            figures["objects_read"] = len({r.key for r in reads})
            figures["listings"] = sum(r.is_listing for r in reqs)
            figures["days_read"] = dict(sorted(Counter(r.key.split("/")[1] for r in reads).items()))
        out.append(figures)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/object-store-bench"))
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    os.environ.update(TEST_CREDENTIALS)
    work = args.workdir.resolve()
    data = work / "data"
    started = time.perf_counter()
    generate(data, args.rows, args.days)
    print(f"dataset: {args.rows:,} rows over {args.days} days in {data} ({time.perf_counter() - started:.0f} s)")
    local = configs(work, "local", str(data / "rows"), str(data / "labels"), None)
    register(work, local, data)

    server = S3Server(work / "s3")
    server.start()
    try:
        os.environ["AWS_ENDPOINT_URL"] = server.url
        took = upload(data, "bench")
        print(f"uploaded {len(list(data.rglob('*.parquet')))} objects to moto at {server.url} in {took:.0f} s")
        remote = configs(work, "remote", "s3://bench/rows/", "s3://bench/labels/", server.url)
        from_bucket = timed_checks(remote, server)
        from_disk = timed_checks(local, None)
    finally:
        server.stop()

    window = {f"dt={(END - timedelta(days=d)):%Y-%m-%d}" for d in range(1, 8)}
    for b, d in zip(from_bucket, from_disk, strict=True):
        ratio = b["seconds"] / d["seconds"]
        print(
            f"{b['check']} check: {b['n_rows']:,} rows; bucket {b['seconds']:.2f} s, local files "
            f"{d['seconds']:.2f} s, ratio {ratio:.2f}; object requests {b['object_requests']} "
            f"({b['objects_read']} objects), listings {b['listings']}"
        )
        outside = set(b["days_read"]) - window
        print(f"  days read: {sorted(b['days_read']) or 'none'}; outside the window: {sorted(outside) or 'none'}")
        b_signals = {k: v for k, v in b["signals"].items() if k != "drift_report_run"}
        d_signals = {k: v for k, v in d["signals"].items() if k != "drift_report_run"}
        print(f"  same decision as local files: {b['action'] == d['action']}, same signals: {b_signals == d_signals}")


if __name__ == "__main__":
    main()
