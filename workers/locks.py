"""Redis locks with expiry: one check per model at a time, one active beat.

A lock is a key set with ``SET NX PX`` holding a random token; only the holder's token can renew
or release it (a Lua compare-and-set), so a worker that stalled past the expiry cannot release a
lock another worker now holds. A holder that dies (SIGKILL) leaves the key to expire.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from controller.errors import RetryLater
from workers.app import redis_key

PREFIX = "retrain:lock:"

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end
"""


class RedisLock:
    """A named lock with a time-to-live; see the module docstring."""

    def __init__(self, client: redis.Redis, name: str, ttl_seconds: float) -> None:
        self.client = client
        self.key = redis_key(PREFIX + name)
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.token = secrets.token_hex(16)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        """Extend the expiry if we still hold the lock; False when it was lost."""
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def hold(self) -> bool:
        """Renew if held, else try to take it: the standby loop of a singleton such as beat."""
        return self.renew() or self.acquire()

    def release(self) -> bool:
        return bool(self.client.eval(_RELEASE, 1, self.key, self.token))

    def held_by_anyone(self) -> bool:
        return bool(self.client.exists(self.key))


@contextmanager
def model_lock(client: redis.Redis, model: str, ttl_seconds: float, retry_delay: float = 5.0) -> Iterator[RedisLock]:
    """Hold the per-model check lock, or raise RetryLater when another check holds it."""
    lock = RedisLock(client, f"check:{model}", ttl_seconds)
    if not lock.acquire():
        raise RetryLater(f"a check of {model} is already running", delay=retry_delay)
    try:
        yield lock
    finally:
        lock.release()
