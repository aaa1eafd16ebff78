"""Benchmark: ``retrainctl costs import`` of a large FOCUS export: wall time and peak memory.

Generates a FOCUS 1.0 export of ``--rows`` rows (default 1,000,000): hourly usage rows of
``--rows / (24 x --days)`` resources over ``--days`` days (default 30), about a fifth tagged with
a model, a team and a stage, a share with an MLflow run id, a monthly fee per account spread over
the month, corrections and credits. It writes it as gzipped CSV (and, with ``--parquet``, as
Parquet), then runs the real command in a child process against a fresh store and reports the
child's wall time and peak resident memory (``ru_maxrss`` of the child), and checks that the
ledger's total equals the export's.

    .venv/bin/python benchmarks/ledger_import.py                       # SQLite file store
    .venv/bin/python benchmarks/ledger_import.py --store-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

MODELS = ["credit-risk", "churn", "fraud", "ranking", "pricing"]
STAGES = ["training", "serving", "storage", "monitoring"]


def generate(rows: int, days: int, seed: int) -> pa.Table:
    """The export (see the module docstring), as one Arrow table."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    resources = max(-(-rows // hours), 1)  # at least ``rows`` rows
    n = resources * hours
    res = np.repeat(np.arange(resources), hours)
    hour = np.tile(np.arange(hours), resources)
    start = np.datetime64("2026-11-01T00:00:00") + hour.astype("timedelta64[h]")
    tag_of = []
    for r in range(resources):
        if r % 5 == 0:
            tags = {"model": MODELS[r % len(MODELS)], "team": f"team-{r % 3}", "stage": STAGES[r % 4]}
            if r % 20 == 0:
                tags["mlflow_run_id"] = f"{r:032x}"
            tag_of.append(json.dumps(tags))
        else:
            tag_of.append(json.dumps({"env": "prod", "owner": f"svc-{r % 50}"}))
    billed = rng.gamma(2.0, 0.05, n).round(6)
    # one row in 500 a correction or credit of what it billed
    billed[rng.random(n) < 0.002] *= -1
    table = pa.table(
        {
            "BilledCost": billed,
            "EffectiveCost": (billed * 0.9).round(6),
            "BillingCurrency": pa.array(["USD"] * n),
            "ChargePeriodStart": np.datetime_as_string(start, unit="s").astype(object) + "Z",
            "ChargePeriodEnd": np.datetime_as_string(start + np.timedelta64(1, "h"), unit="s").astype(object) + "Z",
            "ChargeCategory": np.where(billed < 0, "Credit", "Usage").astype(object),
            "ChargeClass": np.where(billed < 0, "Correction", "").astype(object),
            "ResourceId": np.char.add("arn:aws:ec2:i-", res.astype(str)).astype(object),
            "ResourceName": np.char.add("node-", res.astype(str)).astype(object),
            "ServiceCategory": np.where(res % 4 == 2, "Storage", "Compute").astype(object),
            "ServiceName": np.where(res % 4 == 2, "Amazon S3", "Amazon EC2").astype(object),
            "SubAccountId": np.char.add("acct-", (res % 7).astype(str)).astype(object),
            "Tags": np.array(tag_of, dtype=object)[res],
            "x_ProviderField": np.zeros(n),
        }
    )
    return table


def write(root: Path, rows: int, days: int, seed: int, parquet: bool) -> None:
    """Write the export into ``root``; print its row count and effective total as JSON."""
    table = generate(rows, days, seed)
    with pa.CompressedOutputStream(str(root / "export.csv.gz"), "gzip") as out:
        pacsv.write_csv(table, out)
    if parquet:
        pq.write_table(table, root / "export.parquet")
    print(json.dumps([table.num_rows, float(np.sum(table.column("EffectiveCost").to_numpy()))]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--store-url", default=None, help="Default: a SQLite file in a temporary folder.")
    ap.add_argument("--parquet", action="store_true", help="Also import the same rows as Parquet.")
    ap.add_argument("--write-to", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_to is not None:
        write(args.write_to, args.rows, args.days, args.seed, args.parquet)
        return
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        root = Path(tmp)
        (root / "models").mkdir()
        store_url = args.store_url or f"sqlite:///{root / 'audit.db'}"
        (root / "controller.yaml").write_text(f"store_url: {store_url}\nmlflow_tracking_uri: sqlite:///{root}/m.db\n")
        started = time.perf_counter()
        # generated in a child process: a child forked from a parent holding the export would
        # count the parent's pages in its own peak memory
        gen = [sys.executable, __file__, "--rows", str(args.rows), "--days", str(args.days), "--seed", str(args.seed)]
        gen += ["--write-to", str(root), *(["--parquet"] if args.parquet else [])]
        n, expected = json.loads(subprocess.run(gen, capture_output=True, text=True, check=True).stdout)
        files = [root / "export.csv.gz", *([root / "export.parquet"] if args.parquet else [])]
        print(f"generated {n:,} FOCUS rows in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{f.name} {f.stat().st_size / 2**20:.1f} MB" for f in files))  # fmt: skip
        print(f"store: {'SQLite file' if args.store_url is None else 'PostgreSQL'}")
        cli = Path(sys.executable).parent / "retrainctl"
        env = {**os.environ, "RETRAIN_STORE_URL": store_url}
        for f in files:
            started = time.perf_counter()
            cmd = [str(cli), "costs", "import", str(f), "--config", str(root / "controller.yaml"), "--json"]
            # waited for with wait4, for this child's own peak (RUSAGE_CHILDREN is the maximum over
            # every child, the export's generator included); --json keeps stderr to a few lines
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            assert child.stdout is not None and child.stderr is not None
            stdout, stderr = child.stdout.read(), child.stderr.read()
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            took = time.perf_counter() - started
            if child.returncode != 0:
                raise SystemExit(f"import failed ({child.returncode}): {stderr.strip()}")
            peak_note = f"{usage.ru_maxrss / 1024:.0f} MB"
            out = json.loads(stdout)
            print(
                f"{f.name}: {out['rows_read']:,} rows -> {out['ledger_rows']:,} ledger rows in {took:.1f} s "
                f"(command wall time, process start included); peak RSS {peak_note}; "
                f"effective total {out['effective_total']:,.2f} vs export {expected:,.2f}"
            )
            report = subprocess.run(
                [str(cli), "costs", "report", "--from", "2026-10-01", "--to", "2026-12-31", "--json",
                 "--config", str(root / "controller.yaml")],
                capture_output=True, text=True, check=True, env={**os.environ, "RETRAIN_STORE_URL": store_url},
            )  # fmt: skip
            total = json.loads(report.stdout)["total"]
            print(f"  ledger total (costs report) {total:,.2f}")
            if abs(total - expected) > 1e-6 * max(abs(expected), 1.0):
                raise SystemExit("the ledger's total differs from the export's")


if __name__ == "__main__":
    main()
