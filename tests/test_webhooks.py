"""Standard Webhooks signing, the allow-list, secrets, and the verifying receiver."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook

from controller.adapters import webhooks
from controller.adapters.receiver import start_receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_signature_matches_the_reference_implementation() -> None:
    body = b'{"type":"retrain.deferred","model":"churn"}'
    ours = webhooks.sign(SECRET, "msg_1", int(NOW.timestamp()), body)
    reference = Webhook(SECRET).sign("msg_1", NOW, body.decode())
    assert ours == reference
    assert ours.startswith("v1,")


def test_signature_depends_on_id_timestamp_body_and_secret() -> None:
    ts = int(NOW.timestamp())
    base = webhooks.sign(SECRET, "msg_1", ts, b"{}")
    other_secret = "whsec_" + base64.b64encode(b"another secret value").decode()
    assert (
        len(
            {
                base,
                webhooks.sign(SECRET, "msg_2", ts, b"{}"),
                webhooks.sign(SECRET, "msg_1", ts + 1, b"{}"),
                webhooks.sign(SECRET, "msg_1", ts, b"{ }"),
                webhooks.sign(other_secret, "msg_1", ts, b"{}"),
            }
        )
        == 5
    )


def test_headers_verify_with_standardwebhooks() -> None:
    now = datetime.now(UTC)
    event = webhooks.make_event("retrain.triggered", "churn", {"summary": "drift"}, now)
    body = webhooks.render_body(event)
    headers = webhooks.signed_headers(SECRET, "msg_abc", body, now)
    assert headers["webhook-id"] == "msg_abc"
    assert Webhook(SECRET).verify(body, headers) == event


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown webhook event type"):
        webhooks.make_event("retrain.exploded", "churn", {}, NOW)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:8080/hook", True),
        ("https://localhost/hook", True),
        ("https://hooks.example.com/services/T0/B0/x", True),
        ("https://a.b.example.com/x", True),
        ("https://example.com.evil.net/x", False),
        ("https://evil.net/x", False),
        ("file:///etc/passwd", False),
        ("ftp://127.0.0.1/x", False),
        ("http:///nohost", False),
    ],
)
def test_allow_list(url: str, ok: bool) -> None:
    allow = ["127.0.0.1", "localhost", "*.example.com"]
    if ok:
        webhooks.check_url(url, allow)
    else:
        with pytest.raises(webhooks.WebhookConfigError):
            webhooks.check_url(url, allow)


def test_secret_comes_from_the_named_variable_only() -> None:
    assert webhooks.read_secret("TEAM_A_SECRET", {"TEAM_A_SECRET": SECRET}) == SECRET
    assert webhooks.read_secret(None, {"TEAM_A_SECRET": SECRET}) is None
    with pytest.raises(webhooks.WebhookConfigError, match="TEAM_A_SECRET") as err:
        webhooks.read_secret("TEAM_A_SECRET", {"OTHER": SECRET})
    assert SECRET not in str(err.value)


def test_redacted_target_hides_tokens_in_path_and_query() -> None:
    red = webhooks.redact_url("https://user:pw@hooks.example.com:8443/services/T0/B0/SECRETTOKEN?k=v")
    assert red == "https://hooks.example.com:8443/..."
    assert "SECRETTOKEN" not in red and "pw" not in red


def test_slack_body_has_text_and_keeps_the_event() -> None:
    event = webhooks.make_event("retrain.deferred", "churn", {"summary": "not worth it yet"}, NOW)
    body = json.loads(webhooks.render_body(event, slack=True))
    assert body["text"] == "[retrain.deferred] churn: not worth it yet"
    assert body["type"] == "retrain.deferred" and body["data"] == {"summary": "not worth it yet"}
    assert "text" not in json.loads(webhooks.render_body(event))


def test_receiver_accepts_signed_and_rejects_forged_requests() -> None:
    rx = start_receiver(SECRET)
    try:
        now = datetime.now(UTC)
        good = webhooks.render_body(webhooks.make_event("retrain.promoted", "churn", {"version": "3"}, now))
        with httpx.Client() as client:
            ok = webhooks.send(client, rx.url, "msg_ok", good, SECRET, now, 5.0)
            wrong_key = "whsec_" + base64.b64encode(b"not the receiver's key").decode()
            forged = webhooks.send(client, rx.url, "msg_forged", good, wrong_key, now, 5.0)
            headers = webhooks.signed_headers(SECRET, "msg_tampered", good, now)
            tampered = client.post(rx.url, content=good.replace(b'"3"', b'"4"'), headers=headers)
            unsigned = webhooks.send(client, rx.url, "msg_unsigned", good, None, now, 5.0)
        assert ok.ok and ok.status_code == 204
        assert not forged.ok and forged.status_code == 400
        assert tampered.status_code == 400
        assert not unsigned.ok
        assert rx.rejected == 3
        assert [e["data"] for e in rx.events] == [{"version": "3"}]
        assert rx.ids == ["msg_ok"]
    finally:
        rx.stop()


def test_receiver_fails_on_request_then_recovers() -> None:
    rx = start_receiver(SECRET)
    try:
        rx.fail_next(2)
        now = datetime.now(UTC)
        body = webhooks.render_body(webhooks.make_event("retrain.completed", "churn", {}, now))
        with httpx.Client() as client:
            codes = [webhooks.send(client, rx.url, "msg_x", body, SECRET, now, 5.0).status_code for _ in range(3)]
        assert codes == [500, 500, 204]
        assert rx.failed_on_purpose == 2 and len(rx.events) == 1
    finally:
        rx.stop()


def test_unreachable_receiver_is_a_failed_send_not_an_exception() -> None:
    rx = start_receiver(SECRET)
    url = rx.url
    rx.stop()
    with httpx.Client() as client:
        result = webhooks.send(client, url, "msg_x", b"{}", SECRET, datetime.now(UTC), 2.0)
    assert not result.ok and result.status_code is None and result.error
