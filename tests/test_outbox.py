"""Outbox delivery against a real SQLite store, a fake tag writer and a verifying receiver."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.receiver import Receiver, start_receiver
from controller.adapters.store.store import Store
from controller.config import ModelConfig, ServiceConfig
from controller.reactors.outbox import DeliveryReport, deliver_outbox

SECRET = "whsec_" + base64.b64encode(b"outbox-test-secret-0123456789").decode()
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class FlakyTags:
    """Records tags per version; raises while ``down`` is set."""

    def __init__(self) -> None:
        self.tags: dict[tuple[str, str], dict[str, str]] = {}
        self.down = False
        self.calls = 0

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionError("mlflow server unreachable")
        current = self.tags.setdefault((name, version), {})
        changed = {k: v for k, v in tags.items() if current.get(k) != v}
        current.update(changed)
        return len(changed)


@dataclass
class Ctx:
    service: ServiceConfig
    models: dict[str, ModelConfig]
    store: Store
    registry: FlakyTags
    clock: Callable[[], datetime] = field(default=lambda: T0)


def model(name: str, url: str | None, **notify: Any) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": name,
            "registered_model": name,
            "data": {"source": {"kind": "files", "path": "x.parquet"}},
            "notify": {"url": url, "secret_env": "TEAM_SECRET", **notify},
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture
def rx(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("TEAM_SECRET", SECRET)
    r = start_receiver(SECRET)
    yield r
    r.stop()


def make_ctx(store: Store, url: str | None, max_attempts: int = 4, **notify: Any) -> Ctx:
    service = ServiceConfig.model_validate({"webhooks": {"backoff_seconds": 10, "max_attempts": max_attempts}})
    return Ctx(service, {"churn": model("churn", url, **notify)}, store, FlakyTags())


def webhook(store: Store, key: str, event_type: str, data: dict[str, Any], now: datetime = T0) -> None:
    payload = {"type": event_type, "model": "churn", "data": data, "timestamp": now.isoformat()}
    store.enqueue("churn", "webhook", key, payload, now)


def test_tags_and_webhooks_are_delivered_and_logged(store: Store, rx: Receiver) -> None:
    ctx = make_ctx(store, rx.url)
    store.enqueue(
        "churn", "mlflow_tags", "d1:tags", {"name": "churn", "version": "3", "tags": {"retrain.decision": "DEFER"}}, T0
    )
    webhook(store, "d1:hook", "retrain.triggered", {"summary": "drift on 4 of 20 columns"})
    report = deliver_outbox(ctx, now=T0)
    assert report == DeliveryReport(delivered=2, tags_written=1)
    assert ctx.registry.tags[("churn", "3")] == {"retrain.decision": "DEFER"}
    assert [e["type"] for e in rx.events] == ["retrain.triggered"]
    assert rx.events[0]["data"]["summary"] == "drift on 4 of 20 columns"
    notes = store.notifications("churn")
    assert sorted((n.event_type, n.ok, n.attempt) for n in notes) == [
        ("mlflow_tags", True, 1),
        ("retrain.triggered", True, 1),
    ]
    assert store.outbox_counts() == {"delivered": 2}
    assert deliver_outbox(ctx, now=T0 + timedelta(hours=1)) == DeliveryReport()


def test_registry_outage_backs_off_then_delivers_every_tag(store: Store) -> None:
    ctx = make_ctx(store, None, max_attempts=6)
    for v in range(3):
        store.enqueue(
            "churn", "mlflow_tags", f"t{v}", {"name": "churn", "version": str(v), "tags": {"retrain.state": "x"}}, T0
        )
    ctx.registry.down = True
    assert deliver_outbox(ctx, now=T0).failed == 3
    # not due again before the backoff (10 s, then 20 s) has passed
    assert deliver_outbox(ctx, now=T0 + timedelta(seconds=9)) == DeliveryReport()
    assert deliver_outbox(ctx, now=T0 + timedelta(seconds=10)).failed == 3
    assert deliver_outbox(ctx, now=T0 + timedelta(seconds=29)) == DeliveryReport()
    ctx.registry.down = False
    assert deliver_outbox(ctx, now=T0 + timedelta(seconds=30)) == DeliveryReport(delivered=3, tags_written=3)
    assert set(ctx.registry.tags) == {("churn", "0"), ("churn", "1"), ("churn", "2")}
    attempts = sorted(n.attempt for n in store.notifications("churn") if n.ok)
    assert attempts == [3, 3, 3]


def test_retry_budget_ends_in_dead_letter(store: Store) -> None:
    ctx = make_ctx(store, None, max_attempts=3)
    store.enqueue("churn", "mlflow_tags", "t", {"name": "churn", "version": "1", "tags": {"a": "b"}}, T0)
    ctx.registry.down = True
    reports = [deliver_outbox(ctx, now=T0 + timedelta(hours=h)) for h in range(4)]
    assert [(r.failed, r.dead) for r in reports] == [(1, 0), (1, 0), (0, 1), (0, 0)]
    (item,) = store.outbox_items(status="dead")
    assert item.attempts == 3 and "unreachable" in (item.last_error or "")


def test_receiver_500s_then_gets_the_event_once(store: Store, rx: Receiver) -> None:
    ctx = make_ctx(store, rx.url, max_attempts=8)
    webhook(store, "k", "retrain.promoted", {"version": "4"})
    rx.fail_next(3)
    now = T0
    for _ in range(6):
        deliver_outbox(ctx, now=now)
        now += timedelta(hours=1)
    assert [e["type"] for e in rx.events] == ["retrain.promoted"]
    assert rx.failed_on_purpose == 3 and rx.requests == 4
    codes = sorted((n.attempt, n.status_code) for n in store.notifications("churn"))
    assert codes == [(1, 500), (2, 500), (3, 500), (4, 204)]


def test_no_url_is_suppressed_with_a_reason(store: Store) -> None:
    ctx = make_ctx(store, None)
    webhook(store, "k", "retrain.vetoed", {})
    assert deliver_outbox(ctx, now=T0) == DeliveryReport(suppressed=1)
    (item,) = store.outbox_items(status="suppressed")
    assert item.last_error == "no notify.url configured for this model"


def test_host_outside_allow_list_is_dead_at_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_SECRET", SECRET)
    ctx = make_ctx(store, "https://attacker.example.net/collect")
    webhook(store, "k", "retrain.triggered", {})
    assert deliver_outbox(ctx, now=T0) == DeliveryReport(dead=1)
    (note,) = store.notifications("churn")
    assert not note.ok and "allow_hosts" in (note.error or "")


def test_missing_secret_is_dead_and_never_sent_unsigned(
    store: Store, rx: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEAM_SECRET")
    ctx = make_ctx(store, rx.url)
    webhook(store, "k", "retrain.triggered", {})
    assert deliver_outbox(ctx, now=T0) == DeliveryReport(dead=1)
    assert rx.requests == 0
    assert "TEAM_SECRET" in (store.outbox_items(status="dead")[0].last_error or "")


def test_secret_is_never_logged_or_stored(store: Store, rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_ctx(store, rx.url, max_attempts=1)
    webhook(store, "ok", "retrain.triggered", {})
    webhook(store, "bad", "retrain.completed", {})
    rx.fail_next(0)
    with caplog.at_level(logging.DEBUG):
        deliver_outbox(ctx, now=T0)
        rx.fail_next(1)
        webhook(store, "bad2", "retrain.completed", {})
        deliver_outbox(ctx, now=T0)
    assert store.outbox_counts() == {"delivered": 2, "dead": 1}
    stored = [str(n.error) + n.target for n in store.notifications()] + [
        str(i.last_error) for i in store.outbox_items()
    ]
    raw = SECRET.removeprefix("whsec_")
    assert all(raw not in text for text in [*stored, caplog.text])
    assert "dead after 1 attempts" in caplog.text


def test_digest_suppresses_a_repeated_deferral(store: Store, rx: Receiver) -> None:
    ctx = make_ctx(store, rx.url, digest_hours=24)
    reasons = {"reasons": ["drift_low_value"], "version": "3"}
    times = [T0 + timedelta(hours=h) for h in range(0, 30, 3)]  # a DEFER every 3 hours for 27 hours
    for i, t in enumerate(times):
        webhook(store, f"d{i}", "retrain.deferred", reasons, now=t)
        deliver_outbox(ctx, now=t)
    # one at T0, one at T0+24h (the first deferral 24 h after the last one sent)
    assert len(rx.events) == 2
    assert "suppressed_since_last" not in rx.events[0]["data"]
    assert rx.events[1]["data"]["suppressed_since_last"] == 7
    assert store.outbox_counts() == {"delivered": 2, "suppressed": 8}


def test_digest_sends_when_the_reasons_change_or_something_else_happened(store: Store, rx: Receiver) -> None:
    ctx = make_ctx(store, rx.url, digest_hours=24)
    webhook(store, "a", "retrain.deferred", {"reasons": ["low_value"]})
    webhook(store, "b", "retrain.deferred", {"reasons": ["low_value"]})
    webhook(store, "c", "retrain.deferred", {"reasons": ["low_value", "labels_insufficient"]})
    webhook(store, "d", "retrain.vetoed", {"reasons": ["budget_exhausted"]})
    webhook(store, "e", "retrain.deferred", {"reasons": ["low_value", "labels_insufficient"]})
    webhook(store, "f", "retrain.vetoed", {"reasons": ["budget_exhausted"]})
    report = deliver_outbox(ctx, now=T0)
    assert report == DeliveryReport(delivered=5, suppressed=1)
    assert [e["type"] for e in rx.events] == [
        "retrain.deferred",
        "retrain.deferred",
        "retrain.vetoed",
        "retrain.deferred",
        "retrain.vetoed",
    ]


def test_digest_zero_sends_every_deferral(store: Store, rx: Receiver) -> None:
    ctx = make_ctx(store, rx.url, digest_hours=0)
    for k in "abc":
        webhook(store, k, "retrain.deferred", {"reasons": ["low_value"]})
    assert deliver_outbox(ctx, now=T0).delivered == 3


def test_slack_body_reaches_the_receiver(store: Store, rx: Receiver) -> None:
    ctx = make_ctx(store, rx.url, slack=True)
    webhook(store, "k", "retrain.rejected", {"summary": "challenger 0.81 < champion 0.84"})
    deliver_outbox(ctx, now=T0)
    assert rx.events[0]["text"] == "[retrain.rejected] churn: challenger 0.81 < champion 0.84"


def test_two_deliverers_at_once_send_each_item_once(store: Store, rx: Receiver) -> None:
    ctx = make_ctx(store, rx.url, digest_hours=0)
    for i in range(40):
        webhook(store, f"k{i}", "retrain.triggered", {"i": i})
    now = T0
    reports: list[DeliveryReport] = []
    threads = [threading.Thread(target=lambda: reports.append(deliver_outbox(ctx, now=now))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.delivered for r in reports) == 40
    assert sorted(e["data"]["i"] for e in rx.events) == list(range(40))
    assert len(set(rx.ids)) == 40
