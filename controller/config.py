"""Configuration: the service file and one file per model, validated once at load time.

``configs/controller.yaml`` holds the service settings (store, MLflow, broker, budgets, policy
defaults, webhook allow-list); ``configs/models/<name>.yaml`` holds one watched model each.
Environment variables with the ``RETRAIN_`` prefix override service keys; nested keys use a
double underscore (``RETRAIN_STORE_URL``, ``RETRAIN_WEBHOOKS__ALLOW_HOSTS``).

Every validation error becomes a :class:`~controller.errors.ConfigError` naming the file, the
key path and the problem.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controller.core.cron import Cron
from controller.core.economics import EconomicsConfig
from controller.core.policy import PolicyConfig
from controller.errors import ConfigError
from detectors.options import DriftOptions

ENV_PREFIX = "RETRAIN_"
DEFAULT_CONFIG = Path("configs/controller.yaml")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``30m``, ``6h`` or ``2d``.

    >>> parse_duration("30m"), parse_duration("1.5h"), parse_duration("2d")
    (1800.0, 5400.0, 172800.0)
    """
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    text = str(text).strip()
    try:
        value = float(text[:-1])
        unit = units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"a duration looks like 30s, 15m, 6h or 1d, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return value * unit


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(_Strict):
    """Rows from Parquet or CSV files matching a path or glob."""

    kind: Literal["files"] = "files"
    path: str = Field(
        ...,
        description="A file, directory or glob; relative paths are from the config file. Or a URL of an "
        "object, prefix or glob in an object store (s3://, gs://, abfs://; file:// is local). A directory "
        "or prefix may be a dataset partitioned by day (dt=2026-11-30/ or 2026/11/30/).",
    )
    format: Literal["auto", "parquet", "csv"] = "auto"
    endpoint_url: str | None = Field(
        None,
        description="An S3-compatible store's endpoint (e.g. http://minio:9000). Credentials never go "
        "here: they come from the cloud's standard chain (environment, profile, workload identity).",
    )


class SqlSource(_Strict):
    """Rows from a table (or a SELECT) reached through a SQLAlchemy URL."""

    kind: Literal["sql"] = "sql"
    url: str = Field(..., description="SQLAlchemy URL; ${VAR} is expanded from the environment.")
    table: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class DataConfig(_Strict):
    """Where a model's production data and its labels come from."""

    source: FileSource | SqlSource = Field(..., discriminator="kind")
    time_column: str = "timestamp"
    id_column: str = "id"
    window_hours: float = Field(24.0 * 7, gt=0, description="Length of the current window (hours).")
    labels: FileSource | SqlSource | None = Field(
        None, discriminator="kind", description="Labels arriving later, joined on id_column."
    )
    label_column: str = "label"
    label_delay_hours: float = Field(0.0, ge=0, description="Labels younger than this are not trusted yet.")
    min_labeled_rows: int = Field(200, ge=1, description="Fewer labeled rows than this is 'insufficient'.")


class ScheduleConfig(_Strict):
    """When the model is checked: ``every`` (e.g. ``30m``, ``6h``, ``1d``) or a 5-field ``cron``."""

    every: str | None = "1h"
    cron: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ScheduleConfig:
        if self.cron is not None:
            Cron.parse(self.cron)
        elif self.every is None:
            raise ValueError("give 'every' or 'cron'")
        else:
            parse_duration(self.every)
        return self

    @property
    def seconds(self) -> float | None:
        return None if self.cron is not None or self.every is None else parse_duration(self.every)

    @property
    def cron_expr(self) -> Cron | None:
        return None if self.cron is None else _cron(self.cron)


@functools.lru_cache(maxsize=4096)
def _cron(expr: str) -> Cron:
    return Cron.parse(expr)


class TrainerConfig(_Strict):
    """The training code, named here (and only here): never taken from a tag."""

    callable: str = Field(..., description="'package.module:function' called as f(train_df, **params).")
    params: dict[str, Any] = Field(default_factory=dict)
    window_hours: float | None = Field(None, gt=0, description="Training window; default: the check window.")

    @field_validator("callable")
    @classmethod
    def _path(cls, v: str) -> str:
        mod, sep, fn = v.partition(":")
        if not sep or not mod or not fn.isidentifier():
            raise ValueError(f"must look like 'package.module:function', got {v!r}")
        return v


class NotifyConfig(_Strict):
    """Where the owner's webhooks go; the secret is read from the environment variable named here."""

    url: str | None = None
    secret_env: str | None = None
    slack: bool = False
    digest_hours: float = Field(24.0, ge=0, description="Repeat an unchanged DEFER at most this often.")


class ComponentUse(_Strict):
    """A shared component (an embedding model or base model) this model is built on.

    The component is a registered model in MLflow marked with the tag ``retrain.component=true``.
    Its ``alias`` points at its newest released version; when that is not ``version``, each check
    of this model validates the new version on this model's own window (see
    ``controller.reactors.components``).
    """

    component: str = Field(..., min_length=1, description="The component's registered model name.")
    version: str = Field(..., min_length=1, description="The component version this model was trained on.")
    alias: str = Field("champion", description="The component's alias that names its newest version.")
    embedding: str | None = Field(
        None, description="The embedding (a name in drift.embeddings) this component produces for this model."
    )
    inputs: list[str] = Field(
        default_factory=list, description="Columns of this model's window the component reads (its input)."
    )
    tolerance: float = Field(
        0.005, ge=0.0, description="Metric points a new version may cost this model and still be adopted."
    )

    @field_validator("version", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class ModelConfig(_Strict):
    """One watched model: ``configs/models/<name>.yaml``."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    registered_model: str
    alias: str = "champion"
    owner: str | None = None
    team: str | None = None
    business_purpose: str | None = None
    task: Literal["classification", "regression"] = "classification"
    features: list[str] | None = None
    target: str = "label"
    prediction_column: str = "prediction"
    proba_columns: list[str] = Field(default_factory=list)
    data: DataConfig
    schedule: ScheduleConfig = ScheduleConfig()
    economics: EconomicsConfig | None = None
    policy: dict[str, Any] = Field(default_factory=dict, description="Overrides of the policy defaults.")
    policy_preset: str | None = Field(None, description="A file in configs/policies/, e.g. 'growth'.")
    trainer: TrainerConfig | None = None
    notify: NotifyConfig = NotifyConfig()
    drift: DriftOptions = Field(default_factory=DriftOptions, description="Drift tests; see detectors.drift.")
    multivariate_drift: bool = Field(
        False, description="Also run the domain-classifier (multivariate) drift check; about a second per check."
    )
    retire_on: datetime | None = Field(
        None, description="A planned retirement (UTC): a retrain's value counts only until then. None: open-ended."
    )
    uses: list[ComponentUse] = Field(default_factory=list, description="Shared components this model is built on.")
    source_file: str | None = Field(None, exclude=True)

    @field_validator("retire_on")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v if v is None or v.tzinfo else v.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _uses_fit(self) -> ModelConfig:
        seen: set[str] = set()
        for i, use in enumerate(self.uses):
            if use.component in seen:
                raise ValueError(f"uses.{i}: component {use.component!r} is listed twice")
            seen.add(use.component)
            if use.embedding is not None and use.embedding not in self.drift.embeddings:
                known = ", ".join(self.drift.embeddings) or "none"
                raise ValueError(f"uses.{i}.embedding: {use.embedding!r} is not in drift.embeddings (has: {known})")
        return self


class WebhookSettings(_Strict):
    allow_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description="Hosts webhooks may be sent to; anything else is refused.",
    )
    max_attempts: int = Field(8, ge=1)
    backoff_seconds: float = Field(5.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0)


STAGES = ("training", "serving", "storage", "monitoring", "labeling", "other")
Stage = Literal["training", "serving", "storage", "monitoring", "labeling", "other"]


class StageRule(_Strict):
    """Billing rows that match every pattern given here (shell globs, case-sensitive) belong to ``stage``."""

    stage: Stage
    service_category: str | None = Field(None, description="Glob on FOCUS ServiceCategory, e.g. 'Storage'.")
    service_name: str | None = Field(None, description="Glob on FOCUS ServiceName, e.g. 'Amazon SageMaker'.")
    resource_id: str | None = Field(None, description="Glob on FOCUS ResourceId, e.g. '*:training-job/*'.")

    @model_validator(mode="after")
    def _some_pattern(self) -> StageRule:
        if self.service_category is None and self.service_name is None and self.resource_id is None:
            raise ValueError("give at least one of service_category, service_name or resource_id")
        return self


class CostsConfig(_Strict):
    """How billing rows (FOCUS exports) are attributed to models, teams and lifecycle stages."""

    model_tag: str = Field("model", description="Tag key whose value names the model (its name or registered model).")
    team_tag: str = Field("team", description="Tag key whose value names the team; else the model's config team.")
    stage_tag: str = Field("stage", description="Tag key whose value names the lifecycle stage.")
    run_tag: str = Field("mlflow_run_id", description="Tag key whose value is a retrain's MLflow run id.")
    stages: list[StageRule] = Field(
        default_factory=list, description="Rules for rows without a stage tag; the first that matches wins."
    )
    basis: Literal["effective", "billed"] = Field(
        "effective", description="Cost column: EffectiveCost (amortized) or BilledCost (as invoiced)."
    )
    batch_rows: int = Field(100_000, ge=1_000, description="Rows read and attributed at a time on import.")
    anomaly_min_cost: float = Field(
        1.0, gt=0, description="Money per day under which spend is too small to be an anomaly."
    )
    anomaly_history_days: int = Field(
        56, ge=14, description="Days of a spend series the anomaly detector learns from (and reads before a range)."
    )
    check_cron: str = Field("30 6 * * *", description="When beat runs the daily spend check (UTC, 5-field cron).")

    @field_validator("check_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        Cron.parse(v)
        return v


class ConsoleToken(_Strict):
    """One bearer token of the console, stored as the SHA-256 of the token (never the token itself)."""

    name: str = Field(..., min_length=1, max_length=200, description="Recorded as the author of its actions.")
    role: Literal["viewer", "owner", "admin"]
    team: str | None = Field(None, description="The team whose models an owner token may act on.")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the token.")

    @model_validator(mode="after")
    def _owner_has_team(self) -> ConsoleToken:
        if self.role == "owner" and not self.team:
            raise ValueError(f"token {self.name!r}: an owner token needs the team whose models it may act on")
        return self


class ConsoleSettings(_Strict):
    """``retrainctl serve``: the web console, its JSON API and ``/metrics``."""

    tokens: list[ConsoleToken] = Field(
        default_factory=list, description="Bearer tokens (as hashes); none: the console is read-only."
    )
    mlflow_ui_url: str | None = Field(
        None, description="Where people open the MLflow UI, for links to versions and reports."
    )
    metrics_public: bool = Field(True, description="/metrics without a token (Prometheus scrapes it).")
    metrics_per_model: bool = Field(False, description="Also export per-model gauges (bounded by metrics_max_models).")
    metrics_max_models: int = Field(200, ge=1, description="At most this many models get per-model series.")
    savings_period_days: float = Field(
        7.0, gt=0, description="The periodic schedule the Savings page compares the controller with."
    )

    @model_validator(mode="after")
    def _unique(self) -> ConsoleSettings:
        names = [t.name for t in self.tokens]
        hashes = [t.sha256 for t in self.tokens]
        if len(set(names)) != len(names) or len(set(hashes)) != len(hashes):
            raise ValueError("token names and hashes must be unique (an action is recorded under the name)")
        return self


class ServiceConfig(_Strict):
    """``configs/controller.yaml``."""

    store_url: str = "sqlite:///.retrain/audit.db"
    mlflow_tracking_uri: str = "sqlite:///.retrain/mlflow.db"
    mlflow_registry_uri: str | None = None
    mlflow_artifact_root: str = ".retrain/mlartifacts"
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = "redis://127.0.0.1:6379/1"
    models_dir: str = "models"
    policies_dir: str = "policies"
    policy: PolicyConfig = PolicyConfig()
    team_budgets: dict[str, float] = Field(default_factory=dict, description="Money per team per month.")
    webhooks: WebhookSettings = WebhookSettings()
    costs: CostsConfig = CostsConfig()
    check_lock_seconds: int = Field(900, gt=0)
    check_batch_size: int = Field(
        20,
        ge=1,
        description="Scheduled checks sent together in one task (beat and the timer): a task's fixed cost "
        "(broker round trips, result, recent-check read) is paid once per batch. Each model keeps its own "
        "lock, request key and failure; 1 sends one task per model.",
    )
    retrain_lease_hours: float = Field(
        6.0, gt=0, description="A retrain still training after this long is taken to be dead and is queued again."
    )
    registry_refresh_seconds: float = Field(
        30.0,
        ge=0,
        description="Registered models (aliases, owner tags) are listed from MLflow at most this often per "
        "machine (with cache_dir; else per process); an alias moved outside this process is seen within it. "
        "0: read each model at every check.",
    )
    cache_dir: str | None = Field(
        ".retrain/cache",
        description="Where a worker machine keeps the models and baselines it fetched from MLflow, so its "
        "other processes load them from disk (versions never change); null: fetch in every process.",
    )
    file_cache_mb: int = Field(
        4096,
        ge=0,
        description="With ``cache_dir``: up to this many MB of decoded copies of the Parquet files checks read "
        "(in ``<cache_dir>/files``), memory-mapped by every process of the machine while the file is unchanged; "
        "the copies read least recently are removed first. 0: decode every read.",
    )
    console: ConsoleSettings = ConsoleSettings()
    mlflow_history: bool = Field(
        False,
        description="Also log each check's drift share, metric and loss per day as metrics of a monitoring "
        "run per model version in MLflow (through the outbox).",
    )
    source_file: str | None = Field(None, exclude=True)


M = TypeVar("M", bound=BaseModel)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in {"files", "sql"}))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling against the README's config reference)"
    return path, msg


def validate(model: type[M], data: Any, file: str) -> M:
    """Validate ``data`` against ``model``; any problem becomes one ConfigError line."""
    if not isinstance(data, Mapping):
        raise ConfigError(file, "", f"expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        path, msg = _first_error(exc)
        raise ConfigError(file, path, msg) from None


_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it: a worker reads every model file when it starts and
when one changes (about 6 ms a file in Python, a tenth of that in C)."""


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(str(path), "", "file not found")
    try:
        return yaml.load(path.read_text(), Loader=_YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(str(path), where, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None


def _env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    out = dict(data)
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == f"{ENV_PREFIX}CONFIG":
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] not in ServiceConfig.model_fields:
            continue
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        for p in parts[:-1]:
            node[p] = dict(node.get(p) or {})
            node = node[p]
        node[parts[-1]] = value
    return out


def load_service_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> ServiceConfig:
    """Load ``controller.yaml`` (default: ``$RETRAIN_CONFIG`` or ``configs/controller.yaml``)."""
    env = os.environ if env is None else env
    p = Path(path or env.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG)
    data = _env_overrides(read_yaml(p), env)
    cfg = validate(ServiceConfig, data, str(p))
    return cfg.model_copy(update={"source_file": str(p)})


def config_dir(cfg: ServiceConfig) -> Path:
    return Path(cfg.source_file).parent if cfg.source_file else Path("configs")


def load_model_config(path: Path) -> ModelConfig:
    data = read_yaml(path)
    cfg = validate(ModelConfig, data, str(path))
    if cfg.name != path.stem:
        raise ConfigError(str(path), "name", f"must match the file name {path.stem!r}, got {cfg.name!r}")
    return cfg.model_copy(update={"source_file": str(path)})


def load_models(cfg: ServiceConfig) -> dict[str, ModelConfig]:
    """Every ``*.yaml`` under the models directory, by name."""
    folder = config_dir(cfg) / cfg.models_dir
    if not folder.is_dir():
        raise ConfigError(str(folder), "", "models directory not found (set models_dir in controller.yaml)")
    models = {}
    for f in sorted(folder.glob("*.y*ml")):
        m = load_model_config(f)
        models[m.name] = m
    return models


def resolve_policy(service: ServiceConfig, model: ModelConfig) -> PolicyConfig:
    """Service defaults, then the model's preset, then the model's own overrides."""
    merged = service.policy.model_dump()
    if model.policy_preset:
        preset = config_dir(service) / service.policies_dir / f"{model.policy_preset}.yaml"
        merged.update(read_yaml(preset) or {})
        file = str(preset)
    else:
        file = model.source_file or model.name
    merged.update(model.policy)
    return validate(PolicyConfig, merged, file if not model.policy else (model.source_file or file))


def relative_to_config(path: str, source_file: str | None) -> Path:
    """A path from a config file, relative to that file's folder when it is not absolute."""
    p = Path(os.path.expandvars(path))
    if p.is_absolute() or source_file is None:
        return p
    return Path(source_file).parent / p


def check_trainer(model: ModelConfig) -> None:
    """The model's trainer names a function that exists, found without running its module (a
    trainer's module loads its training stack: seconds). A one-line :class:`ConfigError` otherwise."""
    import ast
    import importlib.util

    if model.trainer is None:
        return
    path = model.trainer.callable
    module, _, name = path.partition(":")
    where = model.source_file or model.name
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ConfigError(where, "trainer.callable", f"cannot find module {module!r} ({exc})") from None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ConfigError(where, "trainer.callable", f"cannot find the Python module {module!r} of {path!r}")
    tree = ast.parse(Path(spec.origin).read_text(), spec.origin)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    if name not in defined:
        raise ConfigError(where, "trainer.callable", f"{module} has no function {name!r}")
