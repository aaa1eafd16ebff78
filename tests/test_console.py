"""The console: its store reads (SQLite and PostgreSQL), pages, JSON API, tokens, CSRF and /metrics.

The history is written through the store's own API (checks, decisions, retrains, overrides), as
the service writes it; the app runs in-process (Starlette's test client). Real-browser tests are
in ``tests/test_console_browser.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from controller.adapters.store.store import Store
from controller.config import ConsoleSettings, ConsoleToken, DataConfig, FileSource, ModelConfig, ServiceConfig
from controller.core.decision import Action, Decision, Numbers, Reason
from controller.core.economics import EconomicsConfig
from controller.reactors.context import Context
from controller.web import auth
from controller.web.app import create_app
from tests.fakes import InMemoryRegistry

T0 = datetime(2026, 11, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=20)
OWNER_TOKEN, OWNER_HASH = "rc_owner-risk-token", auth.token_hash("rc_owner-risk-token")
ADMIN_TOKEN = "rc_admin-token"
VIEWER_TOKEN = "rc_viewer-token"
TOKENS = [
    ConsoleToken(name="risk-owner", role="owner", team="risk", sha256=OWNER_HASH),
    ConsoleToken(name="platform-admin", role="admin", sha256=auth.token_hash(ADMIN_TOKEN)),
    ConsoleToken(name="dashboard", role="viewer", sha256=auth.token_hash(VIEWER_TOKEN)),
]


def model_config(name: str, team: str | None, owner: str | None = "ana", value: float = 1.0) -> ModelConfig:
    return ModelConfig(
        name=name,
        registered_model=name,
        owner=owner,
        team=team,
        business_purpose="scores things",
        data=DataConfig(source=FileSource(path="unused/*.parquet")),
        economics=EconomicsConfig(value_per_point=value, traffic_per_day=10_000, compute_rate_per_hour=10),
    )


def decision(action: Action, reason: Reason, loss: float, at: datetime) -> Decision:
    numbers = Numbers(2.0, loss, loss * 20, 100.0, loss * 20 - 100.0, loss / 5, 900.0, flip_drop_points=1.5)
    return Decision(action, (reason,), f"{action.value}: {reason.value}", numbers, "realized", at)


def write_history(store: Store, model: str, checks: int, loss: float, last: Action = Action.DEFER) -> None:
    """``checks`` daily checks with decisions; the newest takes ``last``; one failed check in between."""
    for i in range(checks):
        at = T0 + timedelta(days=i)
        check_id, _ = store.start_check(model, at, model_row=(model, "ana", None, None))
        if i == 1:
            store.fail_check(check_id, "data source down", at)
            continue
        action = last if i == checks - 1 else Action.DEFER
        reason = Reason.PAYS if action == Action.TRIGGER else Reason.WITHIN_TOLERANCE
        signals = {
            "metric": "accuracy",
            "current": 0.9 - 0.01 * i,
            "current_low": 0.88 - 0.01 * i,
            "current_high": 0.92 - 0.01 * i,
            "baseline": 0.9,
            "source": "estimated" if i % 2 else "realized",
            "drift_share": 0.1 * (i % 4),
            "drift": {
                "columns": [{"column": "income", "test": "psi", "score": 0.3, "threshold": 0.1, "drifted": True}]
            },
        }
        store.finish_check(check_id, "3", signals, decision(action, reason, loss * (i + 1), at), [], at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    s.migrate()
    yield s
    s.dispose()


def make_ctx(store: Store, tokens: list[ConsoleToken] | None = None) -> Context:
    service = ServiceConfig(cache_dir=None, team_budgets={"risk": 1000.0}, console=ConsoleSettings(tokens=tokens or []))
    models = {
        "credit": model_config("credit", "risk"),
        "churn": model_config("churn", "growth", owner="bo"),
        "orphan": model_config("orphan", None, owner=None),
    }
    return Context(service, models, store, InMemoryRegistry(), clock=lambda: NOW)


def populate(store: Store) -> None:
    write_history(store, "credit", 6, loss=50.0, last=Action.TRIGGER)
    write_history(store, "churn", 4, loss=5.0)
    retrain = store.create_retrain("credit", None, "r1", state="promoted", cost_estimate=120.0, created_at=T0)
    assert retrain is not None
    store.update_retrain(retrain, actual_cost=300.0, cost_anomaly=True, champion_metric=0.8, challenger_metric=0.85)
    store.charge({"team:risk": 1000.0, "model:credit": None}, 120.0, NOW)


@pytest.fixture
def requests_seen() -> list[tuple[str, str]]:
    return []


def client(store: Store, tokens: list[ConsoleToken] | None, seen: list[tuple[str, str]] | None = None) -> TestClient:
    ctx = make_ctx(store, tokens)
    return TestClient(create_app(ctx, run_check=lambda m, k: (seen if seen is not None else []).append((m, k))))


# store reads, on both databases ------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_store_reads_of_the_console(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'a.db'}"
    s = Store(url)
    s.migrate()
    populate(s)
    for model in ("churn", "new"):  # a check that failed after the last decision; a model never decided
        failed, _ = s.start_check(model, NOW, model_row=(model, None, None, None))
        s.fail_check(failed, "source down", NOW)
    fleet = s.fleet(["credit", "churn", "new", "nobody"])
    assert set(fleet) == {"credit", "churn", "new"}
    assert (fleet["churn"].action, fleet["churn"].check_status) == ("DEFER", "failed")
    assert (fleet["new"].action, fleet["new"].check_status, fleet["credit"].check_status) == (None, "failed", "done")
    assert fleet["credit"].action == "TRIGGER" and fleet["credit"].numbers["loss_per_day"] == 300.0
    assert fleet["credit"].drift_share == pytest.approx(0.1) and fleet["credit"].metric_baseline == 0.9
    line = s.timeline("credit")
    assert [p.status for p in line] == ["done", "failed", "done", "done", "done", "done"]
    assert line[0].started_at < line[-1].started_at  # oldest first
    assert line[-1].metric_low == pytest.approx(0.83) and line[-1].metric_high == pytest.approx(0.87)
    assert line[-1].action == "TRIGGER" and line[-1].loss_per_day == 300.0
    assert line[1].action is None and line[1].metric_value is None
    assert len(s.timeline("credit", limit=2)) == 2
    spans = s.check_spans()
    assert spans["credit"].checks == 5 and spans["credit"].last - spans["credit"].first == timedelta(days=5)
    assert spans["credit"].first.tzinfo is not None
    costs = s.retrain_costs()
    assert [(c.model, c.actual_cost, c.cost_anomaly) for c in costs] == [("credit", 300.0, True)]
    assert s.spend_by_scope(["2026-11"])[("team:risk", "2026-11")] == 120.0
    assert s.last_retrains()["credit"].state == "promoted"
    newest = s.newest_signals("credit")
    assert newest is not None and newest[1]["drift"]["columns"][0]["column"] == "income"
    s.add_override("credit", "veto", "x", "why", NOW + timedelta(hours=1))
    s.add_override("credit", "approve", "x", "old", NOW - timedelta(hours=1))
    assert [o.kind for o in s.overrides_in_force(NOW)] == ["veto"]
    s.dispose()


# pages and API ---------------------------------------------------------------------------------
def test_fleet_page_and_api_money_at_stake_first(store: Store) -> None:
    populate(store)
    c = client(store, None)
    rows = c.get("/api/models").json()
    assert [r["model"] for r in rows] == ["credit", "churn", "orphan"]
    assert rows[0]["decision"] == "TRIGGER" and rows[0]["loss_per_day"] == 300.0
    assert rows[0]["spend_this_month"] == 120.0 and rows[0]["monthly_budget"] is None
    assert rows[0]["last_retrain_state"] == "promoted" and rows[2]["decision"] is None
    assert [r["model"] for r in c.get("/api/models", params={"team": "growth"}).json()] == ["churn"]
    assert [r["model"] for r in c.get("/api/models", params={"decision": "TRIGGER"}).json()] == ["credit"]
    assert [r["model"] for r in c.get("/api/models", params={"owner": "bo"}).json()] == ["churn"]
    html = c.get("/").text
    assert html.index('data-model="credit"') < html.index('data-model="churn"') < html.index('data-model="orphan"')
    assert "decision trigger" in html and "read-only" in html
    assert c.get("/?team=growth").text.count("data-model=") == 1


def test_model_page_draws_the_timelines_with_marks(store: Store) -> None:
    populate(store)
    html = client(store, None).get("/models/credit").text
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 3
    metric, drift, loss = svgs
    # five finished checks: realized and estimated dots, an interval band, the baseline, marks
    assert metric.count('<path class="line metric"') == 1
    assert metric.count('<circle class="dot realized"') == 3 and metric.count('<circle class="dot estimated"') == 2
    assert '<polygon class="band interval"' in metric and 'class="reference"' in metric
    assert 'class="mark mark-trigger"' in metric and 'class="mark mark-failed"' in metric
    assert 'class="mark mark-retrain"' in metric
    points = re.findall(r'<path class="line loss" d="([^"]+)"', loss)[0]
    assert points.count("L") == 4  # one line through the five checks
    ys = [float(p.split(",")[1]) for p in re.findall(r"[ML]([\d.]+,[\d.]+)", points)]
    assert ys == sorted(ys, reverse=True)  # the loss grows, so the line climbs (y falls) every check
    assert "no data yet" not in drift
    assert "income" in html and "psi" in html  # per-column drift of the newest check
    assert "would flip at a drop of" in html and "1.50 points" in html
    assert "cost anomaly" in html and ">300<" in html  # billed cost beside the estimate
    assert '<td class="num">50</td>' in html  # recovered per day: 5 points x 1.0 per point per 1,000 x 10,000


def test_model_api_and_history(store: Store) -> None:
    populate(store)
    c = client(store, None)
    detail = c.get("/api/models/credit").json()
    assert detail["latest"]["decision"] == "TRIGGER" and detail["drift"][0]["column"] == "income"
    assert detail["retrains"][0]["recovered_per_day"] == pytest.approx(50.0)
    history = c.get("/api/models/credit/history", params={"limit": 3}).json()
    assert [h["status"] for h in history] == ["done", "done", "done"] and history[-1]["action"] == "TRIGGER"
    assert c.get("/api/models/nope").status_code == 404
    missing = c.get("/models/nope")
    assert missing.status_code == 404 and "unknown model" in missing.text
    assert c.get("/api/models/credit/history", params={"limit": 0}).status_code == 422


def test_costs_savings_governance(store: Store) -> None:
    populate(store)
    c = client(store, None)
    costs = c.get("/api/costs").json()
    assert costs["source"] == "retrain estimates"
    assert costs["by_team"] == [{"key": "risk", "month": "2026-11", "amount": 300.0, "retrains": 1}]
    assert costs["team_budgets"][1] == {"team": "risk", "spent_this_month": 120.0, "budget": 1000.0, "left": 880.0}
    assert costs["anomalies"][0]["model"] == "credit"
    assert "source: retrain estimates" in c.get("/costs").text
    savings = c.get("/savings").text
    assert "Assumption." in savings and "every 7 days" in savings
    audit = c.get("/api/audit").json()
    assert [b["model"] for b in audit["breaches"]] == ["orphan"]
    assert "no owner" in audit["breaches"][0]["violations"][0]


def test_savings_against_a_periodic_schedule(store: Store) -> None:
    from controller.web.views import Fleet, savings_report

    populate(store)
    ctx = make_ctx(store)
    report = savings_report(Fleet.of(ctx.service, ctx.models), store)
    credit = next(r for r in report.rows if r.model == "credit")
    # 5 days of checks (days 0, 2..5): a weekly schedule would not have retrained yet; the controller did once
    assert (credit.days_checked, credit.retrains, credit.controller_cost, credit.periodic_retrains) == (
        5.0,
        1,
        300.0,
        0,
    )
    assert credit.saved == -300.0


# identity, roles, CSRF ----------------------------------------------------------------------------
def test_read_only_without_tokens(store: Store) -> None:
    populate(store)
    c = client(store, None)
    assert c.get("/api/models").status_code == 200
    r = c.post("/api/models/credit/approve", json={"reason": "go"}, headers={"Authorization": f"Bearer {OWNER_TOKEN}"})
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    assert store.overrides_in_force(NOW) == []


def test_tokens_401_without_and_403_outside_the_role(store: Store) -> None:
    populate(store)
    seen: list[tuple[str, str]] = []
    c = client(store, TOKENS, seen)
    assert c.get("/api/models").status_code == 401
    assert c.get("/").status_code == 401 and 'name="token"' in c.get("/").text  # the login form
    assert c.get("/api/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    viewer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    owner = {"Authorization": f"Bearer {OWNER_TOKEN}"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert c.get("/api/models", headers=viewer).status_code == 200
    assert c.post("/api/models/credit/veto", json={"reason": "no"}).status_code == 401
    assert c.post("/api/models/credit/veto", json={"reason": "no"}, headers=viewer).status_code == 403
    assert c.post("/api/models/churn/veto", json={"reason": "no"}, headers=owner).status_code == 403  # other team
    assert c.post("/api/models/orphan/veto", json={"reason": "no"}, headers=owner).status_code == 403  # no team
    r = c.post("/api/models/credit/veto", json={"reason": "freeze", "hours": 2}, headers=owner)
    assert r.status_code == 200 and r.json()["author"] == "risk-owner"
    assert (
        c.post("/api/models/churn/approve", json={"reason": "go"}, headers=admin).json()["author"] == "platform-admin"
    )
    assert c.post("/api/models/credit/approve", json={"reason": ""}, headers=owner).status_code == 422
    assert c.post("/api/models/credit/approve", json={"reason": "x", "hours": -1}, headers=owner).status_code == 422
    r = c.post("/api/models/credit/check", headers=owner)
    assert r.status_code == 202 and r.json()["requested_by"] == "risk-owner"
    assert seen == [("credit", r.json()["request_key"])] and "risk-owner" in seen[0][1]
    force = {(o.model, o.kind, o.author) for o in store.overrides_in_force(NOW)}
    assert force == {("credit", "veto", "risk-owner"), ("churn", "approve", "platform-admin")}
    veto = next(o for o in store.overrides_in_force(NOW) if o.kind == "veto")
    assert veto.expires_at - NOW == timedelta(hours=2)


def test_forms_need_the_login_cookie_and_the_csrf_token(store: Store) -> None:
    populate(store)
    c = client(store, TOKENS)
    assert c.post("/login", data={"token": "wrong"}).status_code == 401
    r = c.post("/login", data={"token": OWNER_TOKEN}, follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    page = c.get("/models/credit").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf is not None and OWNER_TOKEN not in page and OWNER_HASH not in page
    refused = c.post("/models/credit/veto", data={"reason": "no", "csrf": "0" * 64}, follow_redirects=False)
    assert refused.status_code == 403 and store.overrides_in_force(NOW) == []
    assert c.post("/models/credit/veto", data={"reason": "no"}, follow_redirects=False).status_code == 403
    done = c.post("/models/credit/veto", data={"reason": "hold", "csrf": csrf.group(1)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/models/credit?done=veto"
    assert [(o.kind, o.author, o.reason) for o in store.overrides_in_force(NOW)] == [("veto", "risk-owner", "hold")]
    bad_hours = c.post("/models/credit/approve", data={"reason": "go", "hours": "soon", "csrf": csrf.group(1)})
    assert bad_hours.status_code == 400 and "hours" in bad_hours.text
    # a cookie alone does not authenticate the API's actions: a cross-site POST carries no bearer header
    assert c.post("/api/models/credit/approve", json={"reason": "go"}).status_code == 401
    assert "approve retrain" not in c.get("/models/churn").text  # not this owner's team: no forms


def test_secrets_stay_out_of_pages_and_api(store: Store) -> None:
    populate(store)
    c = client(store, TOKENS)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    bodies = [c.get(p, headers=headers).text for p in ("/", "/models/credit", "/api", "/api/openapi.json", "/metrics")]
    bodies += [c.get(p, headers=headers).text for p in ("/api/models", "/api/audit", "/api/costs", "/governance")]
    for token in (ADMIN_TOKEN, OWNER_TOKEN, VIEWER_TOKEN):
        assert not any(token in b or auth.token_hash(token) in b for b in bodies)


# /metrics --------------------------------------------------------------------------------------
def test_metrics_parse_and_carry_the_state(store: Store) -> None:
    populate(store)
    store.enqueue("credit", "webhook", "k1", {"type": "x"}, NOW)
    text = client(store, None).get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"retrain_checks", "retrain_decisions", "retrain_check_duration_seconds", "retrain_retrains"} <= set(
        families
    )
    assert families["retrain_checks"].type == "counter"
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert values[("retrain_outbox_items", (("status", "pending"),))] == 1
    assert values[("retrain_outbox_items", (("status", "dead"),))] == 0
    assert values[("retrain_models", (("decision", "TRIGGER"),))] == 1
    assert values[("retrain_team_budget_left", (("team", "risk"),))] == 880.0
    assert not any(s.name.startswith("retrain_model_") for f in families.values() for s in f.samples)


def test_per_model_metrics_are_opt_in_and_bounded(store: Store) -> None:
    populate(store)
    ctx = make_ctx(store)
    console = ctx.service.console.model_copy(update={"metrics_per_model": True, "metrics_max_models": 1})
    ctx.service = ctx.service.model_copy(update={"console": console})
    text = TestClient(create_app(ctx, run_check=lambda m, k: None)).get("/metrics").text
    samples = [
        s for f in text_string_to_metric_families(text) for s in f.samples if s.name.startswith("retrain_model_")
    ]
    assert {s.labels["model"] for s in samples} == {"credit"}  # the one with the most money at stake


def test_counters_add_up_across_processes(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Multiprocess mode: two processes count checks; the console's /metrics shows their sum."""
    folder = tmp_path / "prom"
    folder.mkdir()
    code = (
        "from controller.reactors.metrics import CHECKS, CHECK_SECONDS\n"
        "CHECKS.labels('done').inc(3); CHECKS.labels('failed').inc(); CHECK_SECONDS.observe(0.2)\n"
    )
    for _ in range(2):
        env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=Path(__file__).parents[1])
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    text = client(store, None).get("/metrics").text
    samples = {
        (s.name, tuple(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }
    assert samples[("retrain_checks_total", (("outcome", "done"),))] == 6
    assert samples[("retrain_checks_total", (("outcome", "failed"),))] == 2
    assert samples[("retrain_check_duration_seconds_count", ())] == 2
    assert ("retrain_outbox_items", (("status", "pending"),)) in samples  # the store's gauges as well


def test_token_command_prints_a_token_and_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    from controller.cli import run

    assert run(["console", "token", "ana", "--role", "owner", "--team", "risk"]) == 0
    out = capsys.readouterr().out
    token = re.search(r"(rc_\S+)", out)
    assert token is not None and f"sha256: {auth.token_hash(token.group(1))}" in out
    assert run(["console", "token", "ana", "--role", "owner"]) == 2
    assert run(["console", "token", "ana", "--role", "root"]) == 2
    assert "--role must be one of" in capsys.readouterr().err


def test_console_config_errors_name_the_key(tmp_path: Path) -> None:
    from controller.config import load_service_config
    from controller.errors import ConfigError

    f = tmp_path / "controller.yaml"
    f.write_text("console:\n  tokens:\n    - {name: a, role: owner, sha256: " + "a" * 64 + "}\n")
    with pytest.raises(ConfigError, match="owner token needs the team"):
        load_service_config(f)
    f.write_text("console:\n  tokens:\n    - {name: a, role: viewer, sha256: not-a-hash}\n")
    with pytest.raises(ConfigError, match=r"console\.tokens\.0\.sha256"):
        load_service_config(f)


def test_the_costs_page_shows_measured_spend_once_a_billing_export_is_imported(store: Store, tmp_path: Path) -> None:
    from controller.reactors.costs import import_exports
    from tests.test_costs import row, write_csv

    populate(store)
    ctx = make_ctx(store)
    export = write_csv(
        tmp_path / "focus.csv",
        [
            row(40.0, "2026-11-10", tags={"model": "credit", "stage": "serving"}),
            row(25.0, "2026-11-11", tags={"model": "credit", "stage": "training"}),
            row(7.0, "2026-11-11", tags={"model": "churn", "stage": "storage"}),
            row(3.5, "2026-11-12"),  # no model tag: unattributed, never dropped
        ],
    )
    import_exports(ctx, [export])
    costs = client(store, None).get("/api/costs").json()
    assert costs["source"].startswith("billing ledger")
    assert {(line["key"], line["amount"]) for line in costs["by_team"]} == {("risk", 65.0), ("growth", 7.0)}
    assert {(line["key"], line["amount"]) for line in costs["by_stage"]} == {
        ("serving", 40.0), ("training", 25.0), ("storage", 7.0), ("other", 3.5),
    }  # fmt: skip
    assert costs["unattributed"] == [{"key": "unattributed", "month": "2026-11", "amount": 3.5, "retrains": 0}]
    assert costs["by_month"][0]["amount"] == pytest.approx(75.5)
    risk = next(b for b in costs["team_budgets"] if b["team"] == "risk")
    assert risk["spent_this_month"] == pytest.approx(65.0) and risk["left"] == pytest.approx(935.0)
    page = client(store, None).get("/costs").text
    assert "billing ledger" in page and "Spend anomalies" in page
