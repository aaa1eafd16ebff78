"""Deliver the outbox: MLflow tags, monitoring metrics and owner webhooks, retried until they succeed.

Decisions are committed to the store together with their outbox items; this module sends them
afterwards, so an MLflow or receiver outage delays a tag or a webhook but never loses it.

- Items are leased with ``Store.claim_outbox``, so several deliverers never send one item at once.
- A failed attempt is retried after ``backoff_seconds * 2**attempt`` (capped at one hour); after
  ``max_attempts`` attempts the item is dead-lettered (``status='dead'``, shown by
  ``retrainctl status``). A permanent problem (host not allowed, secret missing, ``GiveUp``) is
  dead-lettered at once.
- Digest mode: a ``retrain.deferred`` event with the same reasons as the last one delivered for the
  model within ``notify.digest_hours`` (and nothing else sent since) is suppressed; the next one
  sent says how many were suppressed.
- Every send attempt is logged with ``Store.record_notification``. Secrets are never logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import sqlalchemy as sa

from controller.adapters import webhooks
from controller.adapters.registry.base import MonitoringPoint
from controller.adapters.store.store import Store
from controller.adapters.store.tables import OutboxRow
from controller.config import ModelConfig, ServiceConfig
from controller.errors import GiveUp

log = logging.getLogger(__name__)


MAX_BACKOFF_SECONDS = 3600.0


DIGEST_TYPES = frozenset({"retrain.deferred"})


class TagWriter(Protocol):
    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> int: ...
    def log_monitoring(self, name: str, version: str, points: Sequence[MonitoringPoint]) -> str: ...


class DeliveryContext(Protocol):
    """The part of ``controller.service.Context`` that delivery needs.

    ``now`` schedules retries and digests; the signature timestamp is always the wall clock, since
    receivers reject a message whose timestamp is more than a few minutes off.
    """

    @property
    def service(self) -> ServiceConfig: ...
    @property
    def models(self) -> dict[str, ModelConfig]: ...
    @property
    def store(self) -> Store: ...
    @property
    def registry(self) -> TagWriter: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    suppressed: int = 0
    tags_written: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            self.delivered + other.delivered,
            self.failed + other.failed,
            self.dead + other.dead,
            self.suppressed + other.suppressed,
            self.tags_written + other.tags_written,
        )


def backoff(attempts_before: int, base_seconds: float) -> float:
    """Seconds to wait after the ``attempts_before + 1``-th failed attempt.

    >>> [backoff(n, 5.0) for n in range(4)], backoff(30, 5.0)
    ([5.0, 10.0, 20.0, 40.0], 3600.0)
    """
    return min(base_seconds * 2.0 ** min(attempts_before, 30), MAX_BACKOFF_SECONDS)


def message_id(item: OutboxRow) -> str:
    """The ``webhook-id``: stable across retries of one item, so receivers can drop duplicates."""
    return "msg_" + hashlib.sha256(item.dedupe_key.encode()).hexdigest()[:32]


def deliver_outbox(ctx: DeliveryContext, now: datetime | None = None, limit: int = 100) -> DeliveryReport:
    """Send every due outbox item (up to ``limit``); returns what happened."""
    now = ctx.clock() if now is None else now
    settings = ctx.service.webhooks
    # The lease must outlast the whole batch, or a second deliverer could claim an item we hold.
    lease = settings.timeout_seconds * limit + 60.0
    items = ctx.store.claim_outbox(now, lease_seconds=lease, limit=limit)
    report = DeliveryReport()
    if not items:
        return report
    history = [item for item in items if item.kind == "mlflow_metrics"]
    if history:
        report += _deliver_history(ctx, history, now)
    with httpx.Client(follow_redirects=False) as client:
        for item in items:
            if item.kind == "mlflow_metrics":
                continue
            if item.kind == "mlflow_tags":
                report += _deliver_tags(ctx, item, now)
            elif item.kind == "webhook":
                report += _deliver_webhook(ctx, client, item, now)
            else:
                ctx.store.outbox_failed(item.id, f"unknown outbox kind {item.kind!r}", None)
                report += DeliveryReport(dead=1)
    return report


def _fail(ctx: DeliveryContext, item: OutboxRow, error: str, now: datetime, permanent: bool) -> DeliveryReport:
    settings = ctx.service.webhooks
    if permanent or item.attempts + 1 >= settings.max_attempts:
        ctx.store.outbox_failed(item.id, error, None)
        log.warning(
            "outbox item %s (%s, %s) dead after %d attempts: %s",
            item.id,
            item.kind,
            item.model,
            item.attempts + 1,
            error,
        )
        return DeliveryReport(dead=1)
    retry_at = now + timedelta(seconds=backoff(item.attempts, settings.backoff_seconds))
    ctx.store.outbox_failed(item.id, error, retry_at)
    return DeliveryReport(failed=1)


def _deliver_tags(ctx: DeliveryContext, item: OutboxRow, now: datetime) -> DeliveryReport:
    payload = item.payload
    name, version = str(payload["name"]), str(payload["version"])
    tags = {str(k): str(v) for k, v in (payload.get("tags") or {}).items()}
    target = f"mlflow:{name}/{version}"
    try:
        written = ctx.registry.set_version_tags(name, version, tags)
    except Exception as exc:  # any registry failure is one failed attempt; the item stays queued
        error = f"{type(exc).__name__}: {exc}"[:1000]
        ctx.store.record_notification(item.id, item.model, "mlflow_tags", target, item.attempts + 1, False, None, error)
        return _fail(ctx, item, error, now, permanent=isinstance(exc, GiveUp))
    ctx.store.record_notification(item.id, item.model, "mlflow_tags", target, item.attempts + 1, True, None, None)
    ctx.store.outbox_delivered(item.id, now)
    return DeliveryReport(delivered=1, tags_written=int(written))


def _deliver_history(ctx: DeliveryContext, items: list[OutboxRow], now: datetime) -> DeliveryReport:
    """Checks' figures for the versions' monitoring runs in MLflow: one batch per version."""
    by_version: dict[tuple[str, str], list[OutboxRow]] = {}
    for item in items:
        by_version.setdefault((str(item.payload["name"]), str(item.payload["version"])), []).append(item)
    report = DeliveryReport()
    for (name, version), batch in by_version.items():
        points = [
            MonitoringPoint(
                datetime.fromisoformat(str(i.payload["at"])),
                int(i.payload["step"]),
                {str(k): float(v) for k, v in (i.payload.get("metrics") or {}).items()},
            )
            for i in batch
        ]
        target = f"mlflow:{name}/{version}"
        try:
            ctx.registry.log_monitoring(name, version, points)
        except Exception as exc:  # any registry failure is one failed attempt of every item in the batch
            error = f"{type(exc).__name__}: {exc}"[:1000]
            for i in batch:
                ctx.store.record_notification(
                    i.id, i.model, "mlflow_metrics", target, i.attempts + 1, False, None, error
                )
                report += _fail(ctx, i, error, now, permanent=isinstance(exc, GiveUp))
            continue
        for i in batch:
            ctx.store.record_notification(i.id, i.model, "mlflow_metrics", target, i.attempts + 1, True, None, None)
            ctx.store.outbox_delivered(i.id, now)
        report += DeliveryReport(delivered=len(batch))
    return report


def _deliver_webhook(ctx: DeliveryContext, client: httpx.Client, item: OutboxRow, now: datetime) -> DeliveryReport:
    event: dict[str, Any] = dict(item.payload)
    event_type = str(event.get("type", "unknown"))
    model = ctx.models.get(item.model)
    if model is None or not model.notify.url:
        why = "model no longer configured" if model is None else "no notify.url configured for this model"
        ctx.store.outbox_suppressed(item.id, now, why)
        return DeliveryReport(suppressed=1)
    notify = model.notify
    url = model.notify.url
    data: dict[str, Any] = dict(event.get("data") or {})
    if event_type in DIGEST_TYPES and notify.digest_hours > 0:
        if _repeat_within_digest(ctx.store, item, notify.digest_hours, now):
            ctx.store.outbox_suppressed(item.id, now, f"digest: same {event_type} sent within {notify.digest_hours}h")
            return DeliveryReport(suppressed=1)
        skipped = _suppressed_since_last(ctx.store, item)
        if skipped:
            data["suppressed_since_last"] = skipped
    body_event: dict[str, Any] = {k: event[k] for k in ("type", "model", "timestamp") if k in event}
    body_event.setdefault("model", item.model)
    body_event["data"] = data
    target = webhooks.redact_url(url)
    attempt = item.attempts + 1
    try:
        webhooks.check_url(url, ctx.service.webhooks.allow_hosts)
        secret = webhooks.read_secret(notify.secret_env)
        if secret is None and not notify.slack:
            raise webhooks.WebhookConfigError("notify.secret_env is not set: webhooks are always signed")
        body = webhooks.render_body(body_event, slack=notify.slack)
        result = webhooks.send(
            client, url, message_id(item), body, secret, datetime.now(UTC), ctx.service.webhooks.timeout_seconds
        )
    except webhooks.WebhookConfigError as exc:
        ctx.store.record_notification(item.id, item.model, event_type, target, attempt, False, None, str(exc))
        return _fail(ctx, item, str(exc), now, permanent=True)
    ctx.store.record_notification(
        item.id, item.model, event_type, target, attempt, result.ok, result.status_code, result.error
    )
    if result.ok:
        ctx.store.outbox_delivered(item.id, now)
        return DeliveryReport(delivered=1)
    return _fail(ctx, item, result.error or "failed", now, permanent=False)


def _digest_key(payload: Mapping[str, Any]) -> tuple[str, str]:
    data = payload.get("data") or {}
    reasons = data.get("reasons") or data.get("reason_codes") or []
    return str(sorted(map(str, reasons)) if isinstance(reasons, list) else reasons), str(data.get("version", ""))


def _repeat_within_digest(store: Store, item: OutboxRow, digest_hours: float, now: datetime) -> bool:
    """True when the newest webhook delivered for the model is the same event, recently."""
    with store.session() as s:
        last = s.scalar(
            sa.select(OutboxRow)
            .where(OutboxRow.model == item.model, OutboxRow.kind == "webhook", OutboxRow.status == "delivered")
            .order_by(OutboxRow.delivered_at.desc(), OutboxRow.id.desc())
            .limit(1)
        )
    if last is None or last.delivered_at is None or last.payload.get("type") != item.payload.get("type"):
        return False
    if now - last.delivered_at >= timedelta(hours=digest_hours):
        return False
    return _digest_key(last.payload) == _digest_key(item.payload)


def _suppressed_since_last(store: Store, item: OutboxRow) -> int:
    """How many events of this type were suppressed since the last one delivered."""
    with store.session() as s:
        last_id = s.scalar(
            sa.select(sa.func.max(OutboxRow.id)).where(
                OutboxRow.model == item.model, OutboxRow.kind == "webhook", OutboxRow.status == "delivered"
            )
        )
        q = sa.select(OutboxRow.payload).where(
            OutboxRow.model == item.model,
            OutboxRow.kind == "webhook",
            OutboxRow.status == "suppressed",
            OutboxRow.last_error.like("digest:%"),
            OutboxRow.id > (last_id or 0),
        )
        return sum(1 for p in s.scalars(q) if p.get("type") == item.payload.get("type"))
