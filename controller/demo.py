"""``retrainctl demo``: the whole loop on generated data, with no services.

It trains a credit-risk classifier on two generated weeks, registers it in a local MLflow store
with its baseline and ownership tags, writes four production weeks (no drift; covariate drift
that does not hurt accuracy, before its labels arrived; concept drift that does; a broken
pipeline with a column gone to nulls), checks each week as of its last hour, performs the
retrain the concept drift earns, delivers tags and signed webhooks to a local receiver, and
prints the four decisions with their reasons and money.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from controller.adapters.receiver import start_receiver
from controller.adapters.registry.base import TrainingRecord
from controller.adapters.registry.mlflow import MlflowRegistry
from controller.adapters.trainers import import_trainer
from controller.adapters.webhooks import new_secret
from controller.config import FileSource, ModelConfig, relative_to_config
from controller.errors import UserError
from controller.reactors.baseline import build_baseline, features_of
from controller.reactors.check import CheckOutcome, run_check
from controller.reactors.context import Context
from controller.reactors.outbox import deliver_outbox
from controller.reactors.retrain import run_retrain

MODEL = "credit-risk"
ROWS_PER_WEEK = 6000
START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday; the reference weeks come first
WEEK = timedelta(days=7)
REGIONS = ["north", "south", "east", "west", "central"]
REGION_EFFECT = {"north": -0.4, "south": 0.3, "east": 0.0, "west": 0.5, "central": -0.2}


@dataclass(frozen=True)
class Week:
    name: str
    story: str
    kind: str
    labels_arrived: bool = True


WEEKS = (
    Week("1", "no drift", "none"),
    Week("2", "harmless input drift, labels not in yet", "covariate", labels_arrived=False),
    Week("3", "concept drift: debt now works the other way", "concept"),
    Week("4", "broken pipeline: income arrives null", "broken"),
)


def generate_week(rng: np.random.Generator, start: datetime, n: int, kind: str, first_id: int) -> pd.DataFrame:
    """One week of credit applications with their (eventual) default labels."""
    income = rng.lognormal(10.8, 0.35, n)
    debt_ratio = rng.beta(2.0, 5.0, n)
    tenure = rng.integers(0, 120, n)
    region = rng.choice(REGIONS, n, p=[0.25, 0.2, 0.2, 0.2, 0.15])
    age = rng.normal(41, 11, n).clip(18, 90)
    n_accounts = rng.poisson(3, n)
    channel = rng.choice(["web", "branch", "partner"], n, p=[0.6, 0.3, 0.1])
    device = rng.choice(["ios", "android", "desktop"], n, p=[0.3, 0.3, 0.4])
    if kind == "covariate":
        # Inputs the model barely uses move a lot: a new partner campaign, older applicants.
        age = rng.normal(55, 9, n).clip(18, 90)
        n_accounts = rng.poisson(6, n)
        channel = rng.choice(["web", "branch", "partner"], n, p=[0.15, 0.15, 0.7])
        device = rng.choice(["ios", "android", "desktop"], n, p=[0.6, 0.3, 0.1])
    z_income = (np.log(income) - 10.8) / 0.35
    z_debt = (debt_ratio - 2 / 7) / 0.16
    debt_sign = -1.0 if kind == "concept" else 1.0
    logit = (
        -0.6
        - 1.6 * z_income
        + debt_sign * 1.8 * z_debt
        - 0.01 * (tenure - 60)
        + np.vectorize(REGION_EFFECT.get)(region)
    )
    defaulted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    seconds = np.sort(rng.uniform(0, WEEK.total_seconds() - 1, n))
    df = pd.DataFrame(
        {
            "application_id": np.arange(first_id, first_id + n),
            "timestamp": [start + timedelta(seconds=float(s)) for s in seconds],
            "income": income.round(2),
            "debt_ratio": debt_ratio.round(4),
            "tenure_months": tenure,
            "region": region,
            "age": age.round(1),
            "n_accounts": n_accounts,
            "channel": channel,
            "device": device,
            "defaulted": defaulted,
        }
    )
    if kind == "broken":
        df["income"] = np.nan
    return df


def _reset(ctx_paths: list[Path]) -> None:
    for p in ctx_paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
        for extra in (Path(f"{p}-wal"), Path(f"{p}-shm")):
            extra.unlink(missing_ok=True)


def _show(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def run_demo(config: Path, workdir: Path, out: Console) -> None:
    out = Console(highlight=False, width=max(out.width, 170))
    t0 = time.perf_counter()
    from controller.config import load_models, load_service_config

    service = load_service_config(config)
    models = load_models(service)
    if MODEL not in models:
        raise UserError(f"{config}: the demo needs the model file models/{MODEL}.yaml next to it")
    cfg = models[MODEL]
    if not isinstance(cfg.data.source, FileSource) or not isinstance(cfg.data.labels, FileSource):
        raise UserError(f"{cfg.source_file}: the demo writes files; data.source and data.labels must be files")
    data_dir = relative_to_config(cfg.data.source.path, cfg.source_file).parent.resolve()
    stores = [p for p in (_sqlite_file(service.store_url), _sqlite_file(service.mlflow_tracking_uri)) if p]
    if len(stores) < 2:
        raise UserError("the demo resets its stores, so it runs only on the SQLite defaults (unset RETRAIN_*_URL)")
    _reset([*stores, Path(service.mlflow_artifact_root), data_dir])
    data_dir.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)

    import mlflow  # imported first: it sets its own log level on import

    logging.getLogger(mlflow.__name__).setLevel(logging.WARNING)
    out.rule("[bold]Retrain controller demo")
    rng = np.random.default_rng(7)
    reference = pd.concat(
        [generate_week(rng, START + i * WEEK, ROWS_PER_WEEK, "none", i * ROWS_PER_WEEK) for i in range(2)],
        ignore_index=True,
    )
    weeks = []
    for i, week in enumerate(WEEKS):
        start = START + (2 + i) * WEEK
        weeks.append(generate_week(rng, start, ROWS_PER_WEEK, week.kind, (2 + i) * ROWS_PER_WEEK))
    for i, df in enumerate(weeks):
        df.drop(columns=["defaulted"]).to_parquet(data_dir / f"applications-{i + 1}.parquet", index=False)
    reference.drop(columns=["defaulted"]).to_parquet(data_dir / "applications-0-reference.parquet", index=False)
    arrived = [reference] + [df for week, df in zip(WEEKS, weeks, strict=True) if week.labels_arrived]
    labels = pd.concat(arrived, ignore_index=True)[["application_id", "defaulted"]]
    labels_path = relative_to_config(cfg.data.labels.path, cfg.source_file)
    labels.to_parquet(labels_path, index=False)
    out.print(
        f"data: {len(reference):,} reference rows and 4 production weeks of {ROWS_PER_WEEK:,} rows in {_show(data_dir)}"
    )

    registry = MlflowRegistry(service.mlflow_tracking_uri, service.mlflow_registry_uri, service.mlflow_artifact_root)
    _register_first_version(registry, cfg, reference)
    out.print(f"registered {cfg.registered_model} v1 as '{cfg.alias}' with its baseline and ownership tags")

    secret = new_secret()
    assert cfg.notify.secret_env is not None
    os.environ[cfg.notify.secret_env] = secret  # in this process only: secrets come from the environment
    receiver = start_receiver(secret)
    try:
        clock_now = [START]
        ctx = Context.from_config(config, registry=registry, clock=lambda: clock_now[0])
        ctx.models[MODEL] = ctx.models[MODEL].model_copy(
            update={"notify": ctx.models[MODEL].notify.model_copy(update={"url": receiver.url})}
        )
        outcomes: list[CheckOutcome] = []
        retrain_line = None
        for i, week in enumerate(WEEKS):
            now = START + (3 + i) * WEEK - timedelta(minutes=1)
            clock_now[0] = now
            outcome = run_check(ctx, MODEL, request_key=f"demo:{MODEL}:{i + 1}", now=now)
            outcomes.append(outcome)
            d = outcome.decision
            assert d is not None
            out.print(f"[bold]week {week.name}[/] ({week.story}): [bold]{d.action.value}[/] - {d.summary}")
            if outcome.retrain_id is not None:
                r = run_retrain(ctx, outcome.retrain_id)
                retrain_line = (
                    f"retrain {r.retrain_id}: challenger v{r.challenger_version} {r.state} "
                    f"(accuracy {r.challenger_metric:.3f} vs champion {r.champion_metric:.3f} on the newest labels)"
                )
                out.print("  " + retrain_line)
            deliver_outbox(ctx, now=now)
        receiver.wait_for(len(outcomes), timeout=10)
        cost_lines = _costs(ctx, cfg, clock_now[0], data_dir, out)
        receiver.wait_for(len(outcomes) + 1, timeout=10)
    finally:
        receiver.stop()

    _print_table(out, outcomes)
    if retrain_line:
        out.print(retrain_line)
    _print_webhooks(out, receiver)
    _print_tags(out, registry, cfg)
    for line in cost_lines:
        out.print(line)
    db = _sqlite_file(service.mlflow_tracking_uri)
    out.print(f"\nfinished in {time.perf_counter() - t0:.1f} s. See the tags in the MLflow UI:")
    out.print(
        f"  .venv/bin/mlflow ui --backend-store-uri sqlite:///{db} --port 5000   # then open http://127.0.0.1:5000"
    )
    out.print("and the audit trail: .venv/bin/retrainctl status ; .venv/bin/retrainctl history credit-risk")
    out.print(
        f"and the console on the demo's store: .venv/bin/retrainctl serve --config {config}"
        "   # then open http://127.0.0.1:8080"
    )


SPIKE_DAY = datetime(2026, 11, 12, tzinfo=UTC)
"""The day the demo's billing export has a serving spike (a runaway autoscaler)."""


def write_focus_export(path: Path, model: str, first: datetime, last: datetime, run_ids: dict[str, float]) -> Path:
    """A FOCUS 1.0 export (gzipped CSV) of one model's daily spend from ``first`` to ``last``:
    serving (weekday traffic), storage, monitoring, one training job per MLflow run id (its cost),
    a shared cost nobody tagged, and a serving spike on ``SPIKE_DAY``."""
    import csv
    import gzip
    import json

    rng = np.random.default_rng(11)
    rows = []

    def add(day: datetime, cost: float, stage: str | None, resource: str, category: str, service: str,
            tags: dict[str, str]) -> None:  # fmt: skip
        rows.append({
            "BilledCost": round(cost, 4), "EffectiveCost": round(cost * 0.92, 4), "BillingCurrency": "USD",
            "ChargePeriodStart": day.strftime("%Y-%m-%dT00:00:00Z"),
            "ChargePeriodEnd": (day + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z"),
            "ChargeCategory": "Usage", "ChargeClass": "", "ResourceId": resource, "ResourceName": resource,
            "ServiceCategory": category, "ServiceName": service, "SubAccountId": "111122223333",
            "Tags": json.dumps({"model": model, "team": "risk", **({"stage": stage} if stage else {}), **tags}),
        })  # fmt: skip

    day = first
    while day <= last:
        weekday = day.weekday() < 5
        serving = (46.0 if weekday else 30.0) * float(np.exp(rng.normal(0, 0.05)))
        if day == SPIKE_DAY:
            serving *= 3.2
        add(day, serving, "serving", f"arn:aws:sagemaker:endpoint/{model}", "AI and Machine Learning",
            "Amazon SageMaker", {})  # fmt: skip
        add(day, 3.1 * float(np.exp(rng.normal(0, 0.02))), "storage", f"arn:aws:s3:::{model}-features", "Storage",
            "Amazon S3", {})  # fmt: skip
        add(day, 1.6 * float(np.exp(rng.normal(0, 0.05))), "monitoring", f"{model}-dashboards",
            "Management and Governance", "Amazon CloudWatch", {})  # fmt: skip
        rows.append({**rows[-1], "BilledCost": 4.0, "EffectiveCost": 4.0, "ResourceId": "shared-nat-gateway",
                     "ResourceName": "shared-nat-gateway", "Tags": "{}"})  # fmt: skip
        day += timedelta(days=1)
    for run_id, cost in run_ids.items():
        add(last - timedelta(days=1), cost, "training", f"arn:aws:sagemaker:training-job/{run_id[:8]}",
            "AI and Machine Learning", "Amazon SageMaker", {"mlflow_run_id": run_id})  # fmt: skip
    with gzip.open(path, "wt", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _costs(ctx: Context, cfg: ModelConfig, now: datetime, data_dir: Path, out: Console) -> list[str]:
    """Import the demo's billing export, run the spend check, deliver its webhook; the lines to print."""
    from controller.reactors.costs import check_spend, import_exports, roi_audit

    runs = {r.mlflow_run_id: 2.4 for r in ctx.store.retrains(cfg.name) if r.mlflow_run_id}
    first = START.replace(day=1)
    export = write_focus_export(data_dir / "focus-export.csv.gz", cfg.name, first, now - timedelta(days=1), runs)
    summary, reconciled = import_exports(ctx, [export], source="aws")
    anomalies = check_spend(ctx, now)
    deliver_outbox(ctx, now=now)
    report = roi_audit(ctx, now.strftime("%Y-%m"))
    t = Table(title=f"ROI audit {report.month} ({report.currency}, measured from the billing export)")
    for col in ("model", "spend by stage", "spend", "value", "retrains: estimated / billed", "ROI", "verdict"):
        t.add_column(col)
    for m in report.models:
        t.add_row(
            m.model,
            "\n".join(f"{s} {v:,.2f}" for s, v in m.spend_by_stage.items()),
            f"{m.spend:,.2f} ({m.cost_source})",
            "-" if m.value is None else f"{m.value:,.2f}",
            f"{m.retrains.count}: {m.retrains.estimated:,.2f} / "
            + ("-" if m.retrains.billed is None else f"{m.retrains.billed:,.2f}"),
            "-" if m.roi is None else f"{m.roi:.2f}",
            m.verdict + "".join(f"\n- {x}" for x in m.reasons),
        )
    out.print(t)
    lines = [
        f"billing: {summary.rows_read:,} FOCUS rows imported from {_show(export)} "
        f"({summary.first_day} to {summary.last_day}); unattributed spend {report.unattributed:,.2f}; "
        f"{len(reconciled)} retrain(s) now carry their billed cost"
    ]
    for a in anomalies:
        top = a.drivers[0] if a.drivers else {}
        lines.append(
            f"spend anomaly {a.day} {a.series}: {a.cost:,.2f} against {a.expected:,.2f} expected "
            f"(score {a.score:.1f}); driven by {top.get('resource_id')} ({top.get('stage')}); "
            "cost.anomaly webhook sent to the owner"
        )
    return lines


def _register_first_version(registry: MlflowRegistry, cfg: ModelConfig, reference: pd.DataFrame) -> None:
    assert cfg.trainer is not None
    features = features_of(cfg, [c for c in reference.columns])
    cut = int(len(reference) * 0.7)
    train, holdout = reference.iloc[:cut], reference.iloc[cut:]
    trainer = import_trainer(cfg.trainer.callable)
    started = time.perf_counter()
    model = trainer(train, features=features, target=cfg.data.label_column, **cfg.trainer.params)
    seconds = time.perf_counter() - started
    baseline = build_baseline(cfg, model, train, holdout, features)
    registry.set_model_tags(
        cfg.registered_model,
        {"owner": cfg.owner or "", "team": cfg.team or "", "business_purpose": cfg.business_purpose or ""},
    )
    version = registry.log_version(
        cfg.registered_model,
        TrainingRecord(
            model,
            baseline,
            {"trainer": cfg.trainer.callable, **cfg.trainer.params},
            {f"holdout_{k}": v for k, v in baseline.metrics.items()},
            seconds,
            {"retrain.role": "initial"},
        ),
    )
    registry.set_alias(cfg.registered_model, cfg.alias, version.version)


def _print_table(out: Console, outcomes: list[CheckOutcome]) -> None:
    t = Table(title="Four production weeks, four decisions")
    t.add_column("week")
    t.add_column("what happened", min_width=22)
    t.add_column("decision", no_wrap=True)
    t.add_column("reasons", no_wrap=True)
    t.add_column("accuracy now vs baseline", no_wrap=True)
    for col in ("drift share", "loss/day", "retrain cost", "net value"):
        t.add_column(col, justify="right", no_wrap=True)
    for week, o in zip(WEEKS, outcomes, strict=True):
        d = o.decision
        assert d is not None
        s, n = o.signals, d.numbers
        acc = "-" if s.get("current") is None else f"{s['current']:.3f} {s['source']}"
        base = s.get("baseline")
        if base is not None and s.get("current") is not None:
            acc += f" vs {base:.3f}"
        share = "-" if s.get("drift_share") is None else f"{s['drift_share']:.2f}"
        t.add_row(
            week.name,
            week.story,
            d.action.value,
            "\n".join(d.reason_codes),
            acc,
            share,
            f"{n.loss_per_day:,.0f}",
            f"{n.retrain_cost:,.0f}",
            f"{n.net_value:,.0f}",
        )
    out.print(t)


def _print_webhooks(out: Console, receiver: object) -> None:
    events = list(getattr(receiver, "events", []))
    t = Table(title=f"Webhooks received and verified (Standard Webhooks signature): {len(events)}")
    for col in ("type", "model", "summary"):
        t.add_column(col)
    for e in events:
        data = e.get("data", {})
        if e.get("type") == "cost.anomaly":
            data = {"summary": f"{data.get('date')} {data.get('series')}: {data.get('cost', 0):,.2f} "
                               f"against {data.get('expected', 0):,.2f} expected"}  # fmt: skip
        summary = data.get("summary") or (
            f"v{data.get('challenger_version')} {data.get('metric')} {data.get('challenger_metric', 0):.3f} "
            f"vs v{data.get('champion_version')} {data.get('champion_metric', 0):.3f}"
            if "challenger_version" in data
            else ""
        )
        t.add_row(str(e.get("type")), str(e.get("model")), str(summary)[:90])
    out.print(t)
    rejected = getattr(receiver, "rejected", 0)
    if rejected:
        out.print(f"[red]{rejected} webhook(s) failed signature verification[/]")


def _print_tags(out: Console, registry: MlflowRegistry, cfg: ModelConfig) -> None:
    t = Table(title=f"retrain.* tags on the versions of {cfg.registered_model} in MLflow")
    t.add_column("version")
    t.add_column("tags")
    for version in ("1", "2"):
        try:
            tags = registry.version_tags(cfg.registered_model, version)
        except Exception:  # a version the demo did not create (no retrain happened)
            continue
        shown = {k: v for k, v in sorted(tags.items()) if k.startswith("retrain.") and k != "retrain.summary"}
        t.add_row(f"v{version}", "\n".join(f"{k} = {v}" for k, v in shown.items()))
    out.print(t)
