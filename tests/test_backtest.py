"""The backtest: pricing, the oracle, the baselines, the controller replay and the CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from benchmarks.streams import make_stream
from controller.backtest import run_backtest
from controller.backtest.baselines import drift_schedule, perf_threshold_schedule, periodic_schedule
from controller.backtest.data import BacktestConfig, prepare
from controller.backtest.matrix import ErrorMatrix, error_matrix
from controller.backtest.pricing import oracle_schedule, price
from controller.backtest.replay import replay
from controller.cli.backtest import register
from controller.core.policy import PolicyConfig
from controller.errors import DataError, UserError

LENIENT = PolicyConfig(min_roi=0.2, hysteresis=0.0, tolerance_points=0.0, cooldown_hours=0.0)
"""A policy that retrains on any drop that pays: the scenarios below were built for it."""


def schedule_of(m: ErrorMatrix, cfg: BacktestConfig, policy: PolicyConfig = LENIENT) -> list[int]:
    return replay_of(m, cfg, policy).retrains


def replay_of(m: ErrorMatrix, cfg: BacktestConfig, policy: PolicyConfig = LENIENT):  # type: ignore[no-untyped-def]
    return replay(
        m, policy, retrain_cost=cfg.retrain_cost, error_cost=cfg.error_cost, window=cfg.window,
        label_delay=cfg.label_delay,
    )  # fmt: skip


def matrix_from(errors: np.ndarray, k: int, rows: int = 100) -> ErrorMatrix:
    t = errors.shape[1]
    return ErrorMatrix(errors, errors.copy(), np.zeros((t, t)), np.zeros((t, t), dtype=bool), k, rows)


def random_matrix(seed: int, t: int = 9, k: int = 3) -> ErrorMatrix:
    rng = np.random.default_rng(seed)
    errors = np.full((t, t), np.nan)
    for s in range(k, t):
        errors[s, s:] = rng.integers(0, 40, size=t - s)
    return matrix_from(errors, k)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cost", [0.0, 7.0, 25.0, 400.0])
def test_the_oracle_is_the_cheapest_of_all_schedules(seed: int, cost: float) -> None:
    m = random_matrix(seed)
    cfg = BacktestConfig(100, 3, 2, cost, 1.0)
    best = min(
        price("any", list(subset), m, cfg).total_cost
        for r in range(0, 6)
        for subset in itertools.combinations(range(4, 9), r)
    )
    oracle = price("oracle", oracle_schedule(m, cost, 1.0), m, cfg)
    assert oracle.total_cost == pytest.approx(best)


def test_price_counts_retrains_and_the_errors_of_the_serving_model() -> None:
    errors = np.full((6, 6), np.nan)
    errors[2, 2:] = [5, 6, 30, 40]
    errors[4, 4:] = [1, 2]
    m = matrix_from(errors, 2)
    r = price("x", [4], m, BacktestConfig(100, 2, 2, 10.0, 2.0), oracle_total=42.0)
    assert r.errors == 5 + 6 + 1 + 2
    assert (r.retrain_cost, r.error_cost, r.total_cost) == (10.0, 28.0, 38.0)
    assert r.cumulative_cost == (10.0, 22.0, 34.0, 38.0)
    assert r.vs_oracle == pytest.approx(38.0 / 42.0)
    with pytest.raises(ValueError, match="retrain chunks"):
        price("x", [2], m, BacktestConfig(100, 2, 2, 10.0, 2.0))


def test_periodic_and_threshold_baselines() -> None:
    assert periodic_schedule(3, 5, 15) == [8, 11, 14]
    errors = np.full((8, 8), np.nan)
    errors[2, 2:] = [10, 10, 11, 20, 20, 20]
    errors[6, 6:] = [10, 10]
    m = matrix_from(errors, 2)
    # the rise at chunk 5 is seen at the start of chunk 6 (no delay) or chunk 7 (one chunk of delay)
    assert perf_threshold_schedule(m, label_delay=0) == [6]
    assert perf_threshold_schedule(m, label_delay=1) == [7]
    drifted = matrix_from(errors, 2)
    drifted.dataset_drift[2, 3] = True
    assert drift_schedule(drifted) == [4]


def test_validation_of_the_knobs_is_one_clear_line() -> None:
    with pytest.raises(UserError, match="--label-delay"):
        BacktestConfig(100, 3, 2, 1.0, 1.0, label_delay=3)
    with pytest.raises(UserError, match="--retrain-cost"):
        BacktestConfig(100, 3, 2, -1.0, 1.0)
    with pytest.raises(UserError, match="--window"):
        BacktestConfig(100, 3, 0, 1.0, 1.0)


def test_prepare_rejects_unknown_columns_and_short_data() -> None:
    df = make_stream("none", chunks=4, chunk_rows=50, seed=0)
    with pytest.raises(DataError, match="target column 'y' not found"):
        prepare(df, "y", 50)
    with pytest.raises(DataError, match="time column 'ts' not found"):
        prepare(df, "label", 50, time_column="ts")
    with pytest.raises(DataError, match="categorical column"):
        prepare(df, "label", 50, categorical=["colour"])
    stream = prepare(df, "label", 50)
    assert stream.categorical == ("segment",) and stream.task == "classification"
    with pytest.raises(DataError, match="need more than --initial-chunks=4"):
        error_matrix(stream, BacktestConfig(50, 4, 2, 1.0, 1.0))


def test_prepare_orders_rows_by_the_time_column() -> None:
    df = pd.DataFrame({"ts": [3, 1, 2, 0], "x": [30.0, 10.0, 20.0, 0.0], "y": [1, 0, 1, 0]})
    stream = prepare(df, "y", 2, time_column="ts")
    assert stream.features["x"].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert list(stream.features.columns) == ["x"]


def test_on_a_stable_stream_the_controller_never_retrains() -> None:
    stream = prepare(make_stream("none", chunks=16, chunk_rows=300, seed=3), "label", 300)
    result = run_backtest(stream, BacktestConfig(300, 4, 3, 50.0, 1.0))
    assert result.policy("controller").retrains == 0
    assert result.policy("periodic-1").retrains == 11
    assert all(p.vs_oracle >= 1.0 - 1e-9 for p in result.policies)


def test_after_an_abrupt_change_the_controller_retrains_and_pays_off() -> None:
    stream = prepare(make_stream("abrupt", chunks=18, chunk_rows=300, seed=2), "label", 300)
    cfg = BacktestConfig(300, 4, 3, 50.0, 1.0, label_delay=1)
    m = error_matrix(stream, cfg)
    schedule = schedule_of(m, cfg)
    assert schedule and min(schedule) > 18 // 3  # not before the change at chunk 6 is seen
    never, ctrl = price("never", [], m, cfg), price("controller", schedule, m, cfg)
    # up to the second change (chunk 12) the retrain has paid for itself and more
    upto = 12 - 1 - cfg.initial_chunks
    assert ctrl.cumulative_cost[upto] < 0.85 * never.cumulative_cost[upto]


def test_a_regression_target_is_priced_by_absolute_error() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=1200)
    y = 3.0 * x + rng.normal(scale=0.5, size=1200)
    y[600:] = -3.0 * x[600:] + rng.normal(scale=0.5, size=600)  # the relation flips halfway
    stream = prepare(pd.DataFrame({"x": x, "y": y}), "y", 100)
    assert stream.task == "regression"
    result = run_backtest(stream, BacktestConfig(100, 3, 2, 20.0, 1.0))
    never, oracle = result.policy("never"), result.policy("oracle")
    assert oracle.retrains >= 1 and oracle.total_cost < never.total_cost
    assert not float(never.errors).is_integer()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """retrainctl (test harness)."""

    return app


def test_cli_prints_json_and_draws_the_plot(tmp_path: Path) -> None:
    data = tmp_path / "stream.csv"
    make_stream("abrupt", chunks=12, chunk_rows=200, seed=1).to_csv(data, index=False)
    args = ["backtest", "--data", str(data), "--target", "label", "--chunk-rows", "200", "--initial-chunks", "3"]
    args += ["--window", "2", "--retrain-cost", "40", "--error-cost", "1", "--json", "--plot", str(tmp_path / "c.png")]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["chunks"] == 12
    names = [p["name"] for p in out["policies"]]
    assert names == [
        "never",
        "periodic-1",
        "periodic-2",
        "periodic-4",
        "periodic-8",
        "drift-only",
        "perf-threshold",
        "controller",
        "oracle",
    ]
    for p in out["policies"]:
        assert set(p) == {
            "name",
            "retrain_chunks",
            "retrains",
            "errors",
            "retrain_cost",
            "error_cost",
            "total_cost",
            "vs_oracle",
        }
        assert p["total_cost"] == pytest.approx(p["retrain_cost"] + p["error_cost"])
        assert p["retrains"] == len(p["retrain_chunks"])
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_turns_bad_input_into_user_errors(tmp_path: Path) -> None:
    base = ["backtest", "--target", "label", "--chunk-rows", "10", "--initial-chunks", "2", "--window", "2"]
    base += ["--retrain-cost", "1", "--error-cost", "1"]
    missing = CliRunner().invoke(_app(), [*base, "--data", str(tmp_path / "nope.csv")])
    assert isinstance(missing.exception, DataError) and "file not found" in str(missing.exception)
    bad_policy = tmp_path / "p.yaml"
    bad_policy.write_text("min_roi: -1\n")
    data = tmp_path / "d.csv"
    make_stream("none", chunks=4, chunk_rows=10).to_csv(data, index=False)
    rejected = CliRunner().invoke(_app(), [*base, "--data", str(data), "--policy", str(bad_policy)])
    assert isinstance(rejected.exception, UserError) and "min_roi" in str(rejected.exception)
    model = CliRunner().invoke(_app(), [*base, "--data", str(data), "--model", "forest"])
    assert isinstance(model.exception, UserError) and "--model" in str(model.exception)


def test_versions_without_labels_yet_are_judged_on_the_label_free_estimate() -> None:
    """With labels two chunks late, the first version is read on CBPE's estimate until its first labels."""
    stream = prepare(make_stream("none", chunks=16, chunk_rows=300, seed=2), "label", 300)
    cfg = BacktestConfig(300, 4, 3, 50.0, 1.0, label_delay=2)
    run = replay_of(error_matrix(stream, cfg), cfg)
    assert [s.source for s in run.signals[:3]] == ["estimated", "estimated", "realized"]
    assert run.estimation_errors and max(run.estimation_errors) < 0.05  # CBPE reads a harmless input shift well


def test_an_estimate_blind_to_a_concept_change_loses_its_trust_and_the_check_waits_for_labels() -> None:
    """CBPE cannot see a new concept: once its misses are scored against the labels, a new version's first
    checks do not act on it but wait for the version's own labels."""
    stream = prepare(make_stream("abrupt", chunks=18, chunk_rows=300, seed=2), "label", 300)
    cfg = BacktestConfig(300, 4, 3, 50.0, 1.0, label_delay=2)
    run = replay_of(error_matrix(stream, cfg), cfg)
    assert run.retrains and min(run.retrains) > 18 // 3
    assert max(run.estimation_errors) > 0.3  # the concept changed under CBPE's feet
    for t in run.retrains:
        if t + 1 < 18:
            after = run.decisions[t + 1 - cfg.initial_chunks - 1]
            assert after.signal_source == "none" and after.reason_codes == ["no_performance_evidence"]


def test_missing_values_and_text_columns_do_not_break_the_fit() -> None:
    df = make_stream("abrupt", chunks=10, chunk_rows=200, seed=4)
    df.loc[df.index % 7 == 0, "x0"] = np.nan
    df.loc[df.index % 11 == 0, "segment"] = None
    df["label"] = np.where(df["label"] == 1, "churn", "stay")
    stream = prepare(df, "label", 200)
    result = run_backtest(stream, BacktestConfig(200, 3, 2, 30.0, 1.0))
    assert result.task == "classification" and result.chunks == 10
    assert result.policy("never").errors > 0


def test_a_clean_version_is_read_against_the_line_of_the_learned_decay(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a steady decay a young version has few noisy chunks: they are weighed against the fresh level plus
    the learned decay, and the decision sees the weighed level."""
    import controller.signals.levels as levels

    stream = prepare(make_stream("gradual", chunks=30, chunk_rows=300, seed=1), "label", 300)
    cfg = BacktestConfig(300, 5, 4, 50.0, 1.0)
    m = error_matrix(stream, cfg)
    weighed: list[tuple[float, float, float]] = []
    real_weigh = levels.precision_weighted

    def weigh(measured: float, measured_var: float, forecast: float, forecast_var: float) -> float:
        out = real_weigh(measured, measured_var, forecast, forecast_var)
        weighed.append((measured, forecast, out))
        return out

    monkeypatch.setattr(levels, "precision_weighted", weigh)
    run = replay_of(m, cfg)
    assert len(run.retrains) >= 3, "a steady decay at this cost is retrained every few chunks"
    assert weighed, "once three clean versions are known, their fresh levels give the forecast its spread"
    assert all(min(a, b) - 1e-12 <= c <= max(a, b) + 1e-12 for a, b, c in weighed)
    assert any(abs(c - a) > 0.2 for a, _, c in weighed), "the forecast moves a noisy reading (points)"
    seen = {round(-s.current * 100, 9) for s in run.signals if s.source == "realized" and s.current is not None}
    assert {round(c, 9) for _, _, c in weighed} <= seen


def test_a_residual_drop_after_one_clean_version_is_significant_once_its_chunks_are_pooled() -> None:
    """The baseline's error counts the chunks pooled into it: after one clean version (8 chunks), the 4 points a
    three-quarters fresh window leaves are retrained away, not lived with until the data changes again."""
    t_end, k, rows, change = 40, 5, 500, 15
    errors = np.full((t_end, t_end), np.nan)
    # error per 500 rows after the change, by the share of the training window (4 chunks) after it
    after = {0.0: 400.0, 0.25: 300.0, 0.5: 200.0, 0.75: 70.0, 1.0: 50.0}
    for s in range(k, t_end):
        lo, hi = (0, k) if s == k else (s - 4, s)
        share = sum(c >= change for c in range(lo, hi)) / (hi - lo)
        errors[s, s:] = [50.0 if c < change else after[share] for c in range(s, t_end)]
    m = ErrorMatrix(errors, errors.copy(), np.zeros((t_end, t_end)), np.zeros((t_end, t_end), dtype=bool), k, rows)
    schedule = schedule_of(m, BacktestConfig(rows, k, 4, 50.0, 1.0))
    stale = [t for t in schedule if change < t < change + 4]
    assert stale and max(stale) == change + 3, "a cheap retrain answers the change before its window is fresh"
    assert any(t >= change + 4 for t in schedule), "the residual of the stale window is retrained away"


def test_a_clean_version_that_starts_at_a_change_is_not_taken_for_a_fresh_level() -> None:
    """A steady decay is retrained every 4 chunks; the data changes exactly when the retrain at 21 starts
    serving, so the jump lies between two versions and the new version's own history shows none. Its first
    chunk is read against the other versions' fresh levels: the change is dated at 21 and the next
    retrains know how much of their window follows it."""
    t_end, k, rows, change = 40, 5, 500, 21
    errors = np.full((t_end, t_end), np.nan)
    for s in range(k, t_end):
        lo, hi = (0, k) if s == k else (s - 4, s)
        share = sum(c >= change for c in range(lo, hi)) / (hi - lo)
        stale = 400.0 - 350.0 * share  # a version fitted before the change is off the new concept
        errors[s, s:] = [stale if c >= change and share < 1 else 50.0 + 10.0 * (c - s) for c in range(s, t_end)]
    m = ErrorMatrix(errors, errors.copy(), np.zeros((t_end, t_end)), np.zeros((t_end, t_end), dtype=bool), k, rows)
    run = replay_of(m, BacktestConfig(rows, k, 4, 50.0, 1.0))
    assert run.retrains[:4] == [9, 13, 17, 21], "the steady decay is retrained every 4 chunks, the 4th at the change"
    assert [run.signals[t - k - 1].window_fresh_share for t in (22, 23, 24, 25)] == [0.25, 0.5, 0.75, 1.0]


def test_a_concept_that_comes_back_is_a_change_and_the_level_is_read_from_it() -> None:
    """Concept B holds chunks 10 to 15, concept A before and after. A retrain is too dear to answer B, so
    the first model (fitted on A) serves throughout: its errors rise at 10 and fall back at 16. The fall is
    a change too: from 17 on the level is read from the chunks since it (the model is fine again), not
    pooled with B's, and a retrain's window counts as fresh only once it follows the fall."""
    t_end, k, rows = 24, 5, 500
    errors = np.full((t_end, t_end), np.nan)
    for s in range(k, t_end):
        errors[s, s:] = [400.0 if 10 <= c < 16 else 50.0 for c in range(s, t_end)]
    run = replay_of(matrix_from(errors, k, rows), BacktestConfig(rows, k, 4, 5000.0, 1.0))
    assert run.retrains == []
    seen = {t: run.signals[t - k - 1] for t in range(k + 1, t_end)}
    assert seen[16].current == pytest.approx(0.2), "during B the model is right on 20 % of the rows"
    assert [seen[t].current for t in (17, 18)] == [pytest.approx(0.9)] * 2, "back on A, it is at its fresh level"
    assert [seen[t].window_fresh_share for t in (17, 18, 21)] == [0.25, 0.5, 1.0]


def test_a_planned_retirement_bounds_what_a_retrain_is_worth() -> None:
    """The model config's retire_on, in the replay as --retire-at: right after the change at 6 a retrain
    that would pay over a month does not pay over the two days left."""
    stream = prepare(make_stream("abrupt", chunks=18, chunk_rows=300, seed=2), "label", 300)
    cfg = BacktestConfig(300, 4, 3, 400.0, 1.0)
    m = error_matrix(stream, cfg)
    free = replay_of(m, cfg, PolicyConfig())
    assert free.retrains, "with no retirement planned the change is worth a retrain"
    first = free.retrains[0]
    ending = replay(m, PolicyConfig(), retrain_cost=400.0, error_cost=1.0, window=3, retire_at=first + 2)
    assert first not in ending.retrains
    assert ending.decisions[first - 5].numbers.horizon_days <= 2.0
    with pytest.raises(UserError, match="--retire-at"):
        BacktestConfig(300, 4, 3, 400.0, 1.0, retire_at=3)


def test_a_bad_plot_path_is_refused_before_any_work(tmp_path: Path) -> None:
    base = ["backtest", "--target", "label", "--chunk-rows", "10", "--initial-chunks", "2", "--window", "2"]
    base += ["--retrain-cost", "1", "--error-cost", "1", "--data", str(tmp_path / "never-read.csv")]
    cases = [(tmp_path / "no" / "such" / "c.png", "does not exist"), (tmp_path / "c.svg", "must end in .png")]
    for plot, says in cases:
        result = CliRunner().invoke(_app(), [*base, "--plot", str(plot)])
        # refused for the plot path, not for the data file that is never read
        assert isinstance(result.exception, UserError) and says in str(result.exception)
