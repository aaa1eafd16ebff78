"""A real S3 API server on this machine for the tests and benchmarks: moto's standalone server
(``moto_server``) in its own process group on a free loopback port, with its request log.

Every request the server answers is one line of its log (``"GET /bucket/key HTTP/1.1" 200``), so
:meth:`S3Server.requests` counts what a client really asked for: which objects it read, how many
listings it made. Credentials are moto's test keys, given to clients through the environment (the
standard chain), as a real deployment gives them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours some status lines
_LINE = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Request:
    """One request the server answered."""

    method: str
    bucket: str
    key: str  # "" for a bucket-level request (a listing)
    query: str
    status: int

    @property
    def is_listing(self) -> bool:
        return self.method == "GET" and not self.key


class S3Server:
    """``moto_server`` on 127.0.0.1; :meth:`stop` and :meth:`start` again (its data is then gone)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "moto-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0, env: dict[str, str] | None = None) -> None:
        moto = Path(sys.executable).parent / "moto_server"
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server not up after {timeout:.0f} s; see {self.log}")
            time.sleep(0.2)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
            self.proc = None

    def enforce_auth_after(self, actions: int) -> None:
        """From the ``actions``-th request on, check every request's credentials against the
        server's IAM users and policies (moto's INITIAL_NO_AUTH_ACTION_COUNT)."""
        req = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=str(actions).encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would leave the raw body empty
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()

    def mark(self) -> int:
        """A place in the request log: :meth:`requests` since it."""
        return self.log.stat().st_size if self.log.exists() else 0

    def requests(self, since: int = 0) -> list[Request]:
        """The S3 requests answered since ``since`` (a :meth:`mark`), moto's own API left out.

        The server writes a request's line after sending its answer: wait until the log has not
        grown for a quarter of a second, so the last requests are in it."""
        size, still = -1, 0
        while still < 5:
            now = self.log.stat().st_size
            still = still + 1 if now == size else 0
            size = now
            time.sleep(0.05)
        with self.log.open("rb") as f:
            f.seek(since)
            text = _ANSI.sub("", f.read().decode(errors="replace"))
        out = []
        for m in _LINE.finditer(text):
            method, target, status = m.group(1), m.group(2), int(m.group(3))
            parts = urlsplit(target)
            if parts.path.startswith("/moto-api"):
                continue
            bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
            out.append(Request(method, bucket, key, parts.query, status))
        return out
