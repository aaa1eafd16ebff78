"""Benchmark: evidently's EmbeddingsDriftMetric against the check from a stored profile.

One process, the same generated data for both: ``--rows`` reference rows and as many current
rows of a ``--dim``-dimensional float32 embedding (correlated Gaussian components, as sentence
embeddings are); the current window moves a fifth of the components by ``--shift`` standard
deviations. Prints the profile build time and size, the check's time (the profile loaded from
bytes and the embedding read from the DataFrame included; median of 3) and peak memory, evidently's
time and peak RSS growth, their ratio, and both verdicts and scores.

    .venv/bin/python benchmarks/embedding_drift.py --rows 100000 --dim 384

``--sampling N`` instead measures how far the profile's sampled ``model`` and ``mmd`` scores
fall from evidently's (which reads every row): N seeds of the profile's and the window's row
samples, on windows larger than the sample, for each of a few shifts.

Peak memory of the check: tracemalloc's peak (numpy reports its buffers to it), in a separate run
so that tracing does not slow the timed one; the process's peak RSS is printed too. evidently is
not traced (tracing slows it several times over); its figure is the growth of the process's peak
RSS while it runs.
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
from detectors.embeddings import EmbeddingOptions, build_embedding_profile, embedding_drift
from detectors.profile import ReferenceProfile, build_profile


def generate(rows: int, dim: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current vectors: Gaussian with a random covariance of decaying spectrum."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0] * np.sqrt(1.0 / (1.0 + np.arange(dim) / 16.0))
    ref = (rng.normal(size=(rows, dim)) @ basis.T).astype(np.float32)
    cur = (rng.normal(size=(rows, dim)) @ basis.T).astype(np.float32)
    moved = rng.choice(dim, dim // 5, replace=False)
    cur[:, moved] += np.float32(shift) * ref[:, moved].std(axis=0)
    return ref, cur


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frames(ref: np.ndarray, cur: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    cols = [f"emb_{i}" for i in range(ref.shape[1])]
    return pd.DataFrame(ref, columns=cols), pd.DataFrame(cur, columns=cols), cols


def speed(args: argparse.Namespace) -> None:
    ref, cur = generate(args.rows, args.dim, args.shift, args.seed)
    ref_df, cur_df, cols = frames(ref, cur)
    size_mb = cur_df.memory_usage().sum() / 2**20
    print(f"data: {args.rows} rows x {args.dim} float32 components per window ({size_mb:.0f} MB each); "
          f"shift {args.shift} on {args.dim // 5} components")  # fmt: skip
    options = DriftOptions(embeddings={"e": "emb_*"})

    t0 = time.perf_counter()
    profile = build_profile(ref_df, embeddings=options.embeddings, sample_rows=0, text=())
    blob = profile.to_bytes()
    print(f"profile build: {time.perf_counter() - t0:.1f} s, {len(blob) / 2**20:.1f} MB serialized")

    def check(method: str) -> dict[str, object]:
        opts = options.model_copy(update={"embedding": EmbeddingOptions(method=method)})  # type: ignore[arg-type]
        return detect_drift(ReferenceProfile.from_bytes(blob), cur_df, opts).to_dict()["embeddings"][0]

    times, result = [], {}
    for _ in range(3):  # the machine is shared: the median of three
        t0 = time.perf_counter()
        result = check("model")
        times.append(time.perf_counter() - t0)
    t_check = statistics.median(times)
    gc.collect()
    tracemalloc.start()
    check("model")
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(f"check from stored profile, method model (default): median {t_check:.2f} s of "
          f"{', '.join(f'{t:.2f}' for t in times)}; tracemalloc peak {peak:.0f} MB; process peak RSS "
          f"{_rss_mb():.0f} MB so far")  # fmt: skip
    print(f"  result: {result}")
    for method in ("ratio", "distance", "mmd"):
        t0 = time.perf_counter()
        other = check(method)
        print(f"  method {method}: {time.perf_counter() - t0:.2f} s, score {other['score']:.5g} "
              f"threshold {other['threshold']:.5g} drifted {other['drifted']}")  # fmt: skip
    if args.skip_evidently:
        return

    from evidently.legacy.metrics import EmbeddingsDriftMetric
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report

    gc.collect()
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    report = Report(metrics=[EmbeddingsDriftMetric("e")])
    report.run(reference_data=ref_df, current_data=cur_df, column_mapping=ColumnMapping(embeddings={"e": cols}))
    ev = report.as_dict()["metrics"][0]["result"]
    t_ev = time.perf_counter() - t0
    print(f"evidently EmbeddingsDriftMetric (default method model): {t_ev:.1f} s, peak RSS growth "
          f"{_rss_mb() - rss_before:.0f} MB; score {ev['drift_score']:.5f} drifted {ev['drift_detected']}")  # fmt: skip
    print(f"speed-up: {t_ev / t_check:.0f}x (evidently's time over the check's median)")
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import model

    t0 = time.perf_counter()
    score, drifted, _ = model()(cur_df[cols].copy(), ref_df[cols].copy())
    print(f"evidently's model method alone (no TSNE plot data): {time.perf_counter() - t0:.1f} s, "
          f"score {score:.5f} drifted {drifted}")  # fmt: skip


def sampling(args: argparse.Namespace) -> None:
    """Sampled scores against evidently's on every row, over seeds of both row samples."""
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import mmd, model

    print(f"sampling tolerance: {args.rows} rows per window, dim {args.dim}, {args.sampling} seeds, "
          "row samples of 2,000 (profile) and 2,000 (window)")
    for shift in (0.0, 0.1, 0.3):
        ref, cur = generate(args.rows, args.dim, shift, args.seed)
        ref_df, cur_df, _ = frames(ref.astype(np.float64), cur.astype(np.float64))
        for method, ev_method in (("model", model()), ("mmd", mmd())):
            ev_score, ev_drift, _ = ev_method(cur_df.copy(), ref_df.copy())
            diffs, agree = [], 0
            for s in range(args.sampling):
                prof = build_embedding_profile("e", (), ref.astype(np.float64), seed=s)
                r = embedding_drift(prof, cur.astype(np.float64), EmbeddingOptions(method=method, seed=s))
                diffs.append(abs((r.score or 0.0) - ev_score))
                agree += r.drifted == ev_drift
            print(f"  shift {shift} {method}: evidently {ev_score:.5f} ({ev_drift}); sampled |diff| "
                  f"max {max(diffs):.4f} mean {np.mean(diffs):.4f}; same verdict {agree}/{args.sampling}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--shift", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-evidently", action="store_true", help="Only time the check.")
    parser.add_argument("--sampling", type=int, default=0, help="Measure the sampling tolerance over N seeds.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.sampling:
        sampling(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
