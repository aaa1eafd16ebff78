"""Benchmark: evidently's DataDriftPreset against the native engine from a stored profile.

One process, the same generated data for both: ``--columns`` columns, 80% numerical (normal,
lognormal, Student-t, integer) and 20% categorical with 8 levels; a quarter of the columns are
shifted in the current window. Prints the profile build time, both check times and their ratio
(from a stored profile, and with the build included: a first check of a new version pays both),
peak memory, and how often the two engines agree.

    .venv/bin/python benchmarks/drift_vs_evidently.py --rows 100000 --columns 60

Peak memory: the native check is measured with tracemalloc (numpy reports its buffers to it),
in a second run so that tracing does not slow the timed one. evidently is not traced (tracing
slows it several times over); its figure is the growth of the process's peak RSS while it runs,
which undercounts when memory freed earlier is reused.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

from detectors.drift import DriftOptions, detect_drift
from detectors.evidently_engine import _parse, _run
from detectors.profile import ReferenceProfile, build_profile

LEVELS = [f"level_{i}" for i in range(8)]


def generate(rows: int, columns: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference and current windows; every fourth column is shifted in the current one."""
    rng = np.random.default_rng(seed)
    n_num = round(columns * 0.8)
    ref: dict[str, np.ndarray] = {}
    cur: dict[str, np.ndarray] = {}
    for i in range(columns):
        shift = i % 4 == 0
        if i < n_num:
            name, family = f"num_{i}", i % 4
            if family == 0:
                ref[name], cur[name] = rng.normal(0, 1, rows), rng.normal(0.3 if shift else 0, 1, rows)
            elif family == 1:
                ref[name], cur[name] = rng.lognormal(0, 1, rows), rng.lognormal(0.3 if shift else 0, 1, rows)
            elif family == 2:
                ref[name], cur[name] = rng.standard_t(3, rows), rng.standard_t(3, rows) * (1.5 if shift else 1)
            else:
                ref[name], cur[name] = rng.integers(0, 10_000, rows), rng.integers(0, 10_000, rows)
        else:
            name = f"cat_{i}"
            p = np.full(8, 1 / 8)
            q = np.array([0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]) if shift else p
            ref[name] = np.array(LEVELS, dtype=object)[rng.choice(8, rows, p=p)]
            cur[name] = np.array(LEVELS, dtype=object)[rng.choice(8, rows, p=q)]
    cats = [c for c in ref if c.startswith("cat_")]
    return pd.DataFrame(ref), pd.DataFrame(cur), cats


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-evidently", action="store_true", help="Only time the native engine.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    ref, cur, cats = generate(args.rows, args.columns, args.seed)
    cur_mb = cur.memory_usage(deep=True).sum() / 2**20
    print(f"data: {args.rows} rows x {args.columns} columns; current window {cur_mb:.0f} MB in memory")
    options = DriftOptions(categorical=tuple(cats))

    t0 = time.perf_counter()
    profile = build_profile(ref, categorical=cats)
    blob = profile.to_bytes()
    t_build = time.perf_counter() - t0
    print(f"profile build: {t_build:.2f} s, {len(blob) / 2**20:.1f} MB serialized, sha256 {profile.content_hash[:12]}")

    # the machine is shared: time the native check three times and report the median
    times = []
    native = None
    for _ in range(3):
        t0 = time.perf_counter()
        native = detect_drift(ReferenceProfile.from_bytes(blob), cur, options)
        times.append(time.perf_counter() - t0)
    assert native is not None
    t_native = statistics.median(times)
    gc.collect()
    tracemalloc.start()
    detect_drift(ReferenceProfile.from_bytes(blob), cur, options)
    _, native_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    native_peak_mb = native_peak / 2**20
    print(f"native check from stored profile (load included): median {t_native:.2f} s of "
          f"{', '.join(f'{t:.2f}' for t in times)}; peak {native_peak_mb:.0f} MB "
          f"= {native_peak_mb / cur_mb:.2f}x the current window")  # fmt: skip

    if args.skip_evidently:
        return
    gc.collect()
    rss_before = _rss_mb()
    kinds = {c: ("categorical" if c in cats else "numerical") for c in ref.columns}
    t0 = time.perf_counter()
    snapshot = _run(ref, cur, kinds, options)
    t_evidently = time.perf_counter() - t0
    evidently_peak_mb = _rss_mb() - rss_before
    print(f"evidently DataDriftPreset: {t_evidently:.2f} s, peak RSS growth {evidently_peak_mb:.0f} MB")
    print(
        f"speed-up: {t_evidently / t_native:.0f}x from a stored profile; "
        f"{t_evidently / (t_build + t_native):.0f}x with the profile build included"
    )

    ev = _parse(snapshot)
    agree = sum(ev[c.column][1] == c.test and _ev_drifted(ev[c.column]) == c.drifted for c in native.columns)
    max_diff = max(abs(ev[c.column][0] - (c.score or 0.0)) for c in native.columns)
    ev_share = sum(_ev_drifted(v) for v in ev.values()) / len(ev)
    print(f"verdicts agree on {agree}/{len(native.columns)} columns; largest score difference {max_diff:.2e}")
    print(f"dataset: native share {native.drift_share:.3f} drifted={native.drifted}; "
          f"evidently share {ev_share:.3f} drifted={ev_share >= options.drift_share}")  # fmt: skip


def _ev_drifted(entry: tuple[float, str, float]) -> bool:
    from detectors.stattests import STATTESTS

    score, name, threshold = entry
    return STATTESTS[name](threshold).drifted(score)


if __name__ == "__main__":
    main()
