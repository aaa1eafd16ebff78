"""The machine cache: what a worker fetched from the registry (a version never changes), kept on
disk so the worker's other processes and its next start load it instead of fetching it again.
"""

from __future__ import annotations

import os
import pickle
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from controller.adapters.filecache import log

MISSING: Any = object()


def _take(lock: Path, expiry_seconds: float = 60.0) -> bool | None:
    """Take ``lock`` (a file): True when taken, False when another process holds it (made less
    than ``expiry_seconds`` ago; an older one was left by a process that died and is taken over),
    None when the folder cannot hold it."""
    for _ in range(2):
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime < expiry_seconds:
                    return False
            except OSError:
                continue  # released meanwhile: try again
            _discard(lock)
        except OSError:
            return None
    return None


def load_local(path: Path) -> Any:
    """A pickle from the machine cache, or ``MISSING`` when it is not there or cannot be read."""
    try:
        with path.open("rb") as f:
            return pickle.load(f)
    except Exception:  # not there, cut short, or from another version of a library: fetch it again
        return MISSING


def save_local(path: Path, value: Any) -> None:
    """Write a pickle into the machine cache whole or not at all; a full or read-only disk only
    costs the next process a fetch."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as exc:  # a full or read-only disk: say so once per folder, and work without it
        _discard(tmp)
        if path.parent not in _UNWRITABLE:
            _UNWRITABLE.add(path.parent)
            log.warning("machine cache %s is not writable (%s): every process fetches from MLflow", path.parent, exc)
    except Exception:  # a value that does not pickle: the next process computes it again
        _discard(tmp)


_UNWRITABLE: set[Path] = set()


def _discard(path: Path) -> None:
    with suppress(OSError):
        path.unlink(missing_ok=True)
