"""Owner webhooks in the Standard Webhooks format.

Every request carries three headers: ``webhook-id`` (stable across retries, so a receiver can drop
duplicates), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``). The secret follows the ``whsec_<base64>``
convention; it is read only from the environment variable named in the model's
``notify.secret_env`` and is never logged or stored.

Outbound URLs must be http(s) and their host must be in ``webhooks.allow_hosts`` (exact, or a
``*.example.com`` suffix pattern), so a model file cannot make the service call anywhere.

The optional Slack-compatible body adds a ``text`` line to the event, which Slack incoming
webhooks display; the event fields stay in the body for any other receiver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

EVENT_TYPES = (
    "retrain.triggered",
    "retrain.deferred",
    "retrain.vetoed",
    "retrain.completed",
    "retrain.promoted",
    "retrain.rejected",
    "retrain.cost_anomaly",
    "retrain.failed",
    "cost.anomaly",
)


SECRET_PREFIX = "whsec_"


class WebhookConfigError(ValueError):
    """A webhook that cannot be sent as configured (bad URL, host not allowed, missing secret)."""


def make_event(event_type: str, model: str, data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The JSON event every receiver gets."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}")
    return {"type": event_type, "model": model, "data": dict(data), "timestamp": now.astimezone(UTC).isoformat()}


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "==")
    except ValueError:
        raise WebhookConfigError("webhook secret is not valid base64 (expected whsec_<base64>)") from None
    if not key:
        raise WebhookConfigError("webhook secret is empty")
    return key


def new_secret() -> str:
    """A fresh random secret in the ``whsec_`` convention."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str | None, msg_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """Headers for one attempt; without a secret only the id and timestamp are sent."""
    timestamp = math.floor(now.timestamp())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret is not None:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers


def check_url(url: str, allow_hosts: Sequence[str]) -> None:
    """Raise WebhookConfigError unless ``url`` is http(s) to an allowed host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookConfigError(f"webhook URL must be http(s)://host/..., got scheme {parts.scheme!r}")
    host = parts.hostname.lower()
    for allowed in allow_hosts:
        allowed = allowed.lower().strip("[]")
        if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
            return
    raise WebhookConfigError(f"webhook host {host!r} is not in webhooks.allow_hosts")


def redact_url(url: str) -> str:
    """The URL without credentials, query or path (Slack-style URLs carry their token in the path)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    base = f"{parts.scheme}://{parts.hostname}{port}/"
    return base + "..." if parts.path not in ("", "/") else base


def read_secret(secret_env: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The secret from the named environment variable; None when no variable is configured."""
    if secret_env is None:
        return None
    env = os.environ if env is None else env
    value = env.get(secret_env)
    if not value:
        raise WebhookConfigError(f"environment variable {secret_env} (notify.secret_env) is not set")
    return value


def slack_text(event: Mapping[str, Any]) -> str:
    data = event.get("data") or {}
    summary = data.get("summary") or data.get("reason") or ""
    head = f"[{event['type']}] {event['model']}"
    return f"{head}: {summary}" if summary else head


def render_body(event: Mapping[str, Any], slack: bool = False) -> bytes:
    """The exact bytes that are signed and sent."""
    body = {"text": slack_text(event), **event} if slack else dict(event)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None
    error: str | None


def send(
    client: httpx.Client,
    url: str,
    msg_id: str,
    body: bytes,
    secret: str | None,
    now: datetime,
    timeout: float,
) -> SendResult:
    """POST one signed webhook; any 2xx is success, anything else (or no answer) a failure."""
    headers = signed_headers(secret, msg_id, body, now)
    try:
        response = client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return SendResult(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= response.status_code < 300:
        return SendResult(True, response.status_code, None)
    return SendResult(False, response.status_code, f"HTTP {response.status_code}")
