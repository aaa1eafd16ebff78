from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.cli import run
from controller.config import load_models, load_service_config, parse_duration, resolve_policy
from controller.errors import ConfigError
from tests.helpers import write_configs


def test_loads_service_and_models(tmp_path: Path) -> None:
    path = write_configs(tmp_path, "data/*.parquet")
    service = load_service_config(path, env={})
    models = load_models(service)
    assert list(models) == ["m1"]
    assert models["m1"].economics is not None and models["m1"].economics.value_per_point == 5.0
    assert resolve_policy(service, models["m1"]).monthly_budget == 10_000


def test_environment_overrides_service_keys(tmp_path: Path) -> None:
    path = write_configs(tmp_path, "data/*.parquet")
    env = {
        "RETRAIN_STORE_URL": "sqlite:///elsewhere.db",
        "RETRAIN_WEBHOOKS__MAX_ATTEMPTS": "3",
        "RETRAIN_POLICY__MIN_ROI": "2.5",
        "UNRELATED": "x",
    }
    cfg = load_service_config(path, env=env)
    assert cfg.store_url == "sqlite:///elsewhere.db"
    assert cfg.webhooks.max_attempts == 3
    assert cfg.policy.min_roi == 2.5


@pytest.mark.parametrize(
    ("patch", "key_path", "words"),
    [
        (
            {"economics": {"value_per_point": -1, "traffic_per_day": 1, "compute_rate_per_hour": 1}},
            "economics.value_per_point",
            "greater than or equal to 0",
        ),
        ({"schedule": {"every": "5 minutes"}}, "schedule", "duration"),
        ({"trainer": {"callable": "no_colon_here"}}, "trainer.callable", "package.module:function"),
        ({"ownr": "typo"}, "ownr", "unknown key"),
        ({"drift": {"stattest": "kss"}}, "drift.stattest", "unknown stattest"),
    ],
)
def test_bad_model_file_names_file_key_and_problem(tmp_path: Path, patch: dict, key_path: str, words: str) -> None:
    path = write_configs(tmp_path, "data/*.parquet", **patch)
    with pytest.raises(ConfigError) as err:
        load_models(load_service_config(path, env={}))
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "models" / "m1.yaml"))
    assert key_path in msg and words in msg
    assert "\n" not in msg


def test_name_must_match_file(tmp_path: Path) -> None:
    path = write_configs(tmp_path, "data/*.parquet", name="other")
    with pytest.raises(ConfigError, match="must match the file name"):
        load_models(load_service_config(path, env={}))


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = write_configs(tmp_path, "data/*.parquet")
    (tmp_path / "models" / "m1.yaml").write_text("name: m1\n  bad: [\n")
    with pytest.raises(ConfigError, match=r"m1.yaml: line \d+: not valid YAML"):
        load_models(load_service_config(path, env={}))


def test_config_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_configs(tmp_path, "data/*.parquet")
    assert run(["config", "validate", "--config", str(path)]) == 0
    assert "ok:" in capsys.readouterr().out
    bad = yaml.safe_load((tmp_path / "models" / "m1.yaml").read_text())
    bad["economics"]["traffic_per_day"] = "lots"
    (tmp_path / "models" / "m1.yaml").write_text(yaml.safe_dump(bad))
    assert run(["config", "validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "economics.traffic_per_day" in err


def test_unknown_trainer_module_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_configs(tmp_path, "data/*.parquet", trainer={"callable": "nowhere.mod:train"})
    assert run(["config", "validate", "--config", str(path)]) == 2
    assert "cannot find module 'nowhere.mod'" in capsys.readouterr().err


def test_shipped_configs_validate() -> None:
    root = Path(__file__).resolve().parents[1]
    assert run(["config", "validate", "--config", str(root / "configs" / "controller.yaml")]) == 0


def test_parse_duration_rejects_nonsense() -> None:
    assert parse_duration("90s") == 90.0
    for bad in ("", "10", "-5m", "1w"):
        with pytest.raises(ValueError):
            parse_duration(bad)
