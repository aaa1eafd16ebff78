"""A tiny local webhook receiver that verifies Standard Webhooks signatures.

Used by the tests and the demo::

    rx = start_receiver(secret)          # background thread on 127.0.0.1, a free port
    ...send webhooks to rx.url...
    rx.events                            # verified JSON bodies, in arrival order
    rx.fail_next(3)                      # answer 500 to the next three requests
    rx.stop()

Verification uses the ``standardwebhooks`` package, independent of the sender's own code. A
request that fails verification is answered 400 and counted in ``rejected``.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


class Receiver:
    """A running receiver; see :func:`start_receiver`."""

    def __init__(self, secret: str, port: int = 0) -> None:
        self._webhook = Webhook(secret)
        self._lock = threading.Lock()
        self._fail_remaining = 0
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.rejected = 0
        self.failed_on_purpose = 0
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # stop() must not wait for a client that went silent
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/hook"

    def fail_next(self, n: int) -> None:
        """Answer 500 (without recording) to the next ``n`` requests."""
        with self._lock:
            self._fail_remaining = n

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Block until at least ``count`` events arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.events) >= count:
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handle(self, body: bytes, headers: dict[str, str]) -> int:
        with self._lock:
            self.requests += 1
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                self.failed_on_purpose += 1
                return 500
        try:
            event = self._webhook.verify(body, headers)
        except (WebhookVerificationError, ValueError):
            with self._lock:
                self.rejected += 1
            return 400
        with self._lock:
            self.events.append(event)
            self.ids.append(headers.get("webhook-id", ""))
        return 204

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                status = receiver._handle(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests and the demo print what matters themselves."""

        return Handler


def start_receiver(secret: str, port: int = 0) -> Receiver:
    """Start a verifying receiver on 127.0.0.1 (``port=0``: a free port) in a background thread."""
    rx = Receiver(secret, port)
    rx._thread.start()
    return rx
