"""A machine's decoded copies of the data files its checks read.

An hourly check of a week's window reads the same files every hour, and decoding Parquet
(decompressing pages, undoing dictionary encoding, converting to pandas) is the largest part of
a warm check's CPU. The first process of a machine to read a file leaves an uncompressed Arrow
copy of it in the machine cache; a later read of the unchanged file, by any process of the
machine, memory-maps that copy: no decoding, and the numbers reach pandas without a copy (the
operating system's page cache holds one copy for all the machine's processes).

A copy is keyed by the file's path, size, modification time and inode, and by which text columns
are read as dictionaries: a file that is rewritten or replaced has a new key, so a stale copy is
never read. An object in a store (:mod:`controller.adapters.objectstore`) is keyed by its URL,
version (ETag or generation, as listed) and size instead: a worker reads an unchanged object once,
and a rewritten object, which has a new version, again. When the folder outgrows its size limit,
the copies read least recently are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

log = logging.getLogger(__name__)


CACHE_MAX_ROWS = 2_000_000
"""Larger files are not copied: they are read by row group with the time filter instead."""


_FORMAT = "1"  # part of every key: a change of what a copy holds makes new keys


def digest(*parts: str) -> str:
    """A cache file's key for ``parts`` (32 hex digits of their sha256)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Slot:
    """Where the copy of one file, as it was when looked up, belongs."""

    copy: Path
    source: Path | None  # None for an object in a store: its key holds its version
    stat: tuple[int, int, int] | None  # size, modification time (ns), inode


@dataclass
class FileCache:
    """Decoded Arrow copies of data files in ``folder``, at most about ``max_bytes`` of them."""

    folder: Path
    max_bytes: int
    _written: int = field(default=0, repr=False)  # bytes written since the folder was last measured
    _broken: bool = field(default=False, repr=False)

    def lookup(self, path: Path, variant: Collection[str] | None) -> tuple[pa.Table | None, Slot | None]:
        """The copy of the file at ``path`` as it is now, mapped (or None), and the slot where a
        copy of it belongs (None when the file cannot be looked at: read it without a copy).
        ``variant`` names how the caller reads the file (here: the text columns it leaves as
        strings; None: every text column as strings), so two ways of reading keep two copies."""
        try:
            st = os.stat(path)
        except OSError:
            return None, None
        slot = Slot(self._copy_path(path, st, variant), Path(path), (st.st_size, st.st_mtime_ns, st.st_ino))
        return self._map(slot.copy), slot

    def lookup_object(
        self, url: str, version: str, size: int, variant: Collection[str] | None
    ) -> tuple[pa.Table | None, Slot | None]:
        """:meth:`lookup` for an object in a store, as listed (``version`` is its ETag or
        generation). An object listed without a version gets no slot: it is read every time."""
        if not version:
            return None, None
        parts = [_FORMAT, "object", url, version, str(size), _variant(variant)]
        slot = Slot(self.folder / f"{digest(*parts)}.arrow", None, None)
        return self._map(slot.copy), slot

    def keep(self, slot: Slot, table: pa.Table) -> None:
        """Copy ``table``, the file of ``slot`` as decoded, for later reads (not when the file
        changed since it was looked up). Callers copy files of at most ``CACHE_MAX_ROWS``."""
        if not self._broken:
            self._keep(slot, table)

    # ------------------------------------------------------------------------------------------
    def _copy_path(self, path: Path, st: os.stat_result, variant: Collection[str] | None) -> Path:
        parts = [
            _FORMAT,
            str(Path(path).resolve()),
            str(st.st_size),
            str(st.st_mtime_ns),
            str(st.st_ino),
            _variant(variant),
        ]
        return self.folder / f"{digest(*parts)}.arrow"

    def _map(self, copy: Path) -> pa.Table | None:
        try:
            with pa.memory_map(str(copy)) as source:
                table = ipc.open_file(source).read_all()
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException):  # cut short or unreadable: decode the file again
            _remove(copy)
            return None
        with contextlib.suppress(OSError):
            os.utime(copy)  # read recently: among the last to be removed
        return table

    def _keep(self, slot: Slot, table: pa.Table) -> None:
        """Write ``table`` as the slot's copy, whole or not at all, if its file did not change meanwhile."""
        copy = slot.copy
        tmp = copy.with_name(f"{copy.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
                # text read as dictionaries has one dictionary per row group; an IPC file holds one
                writer.write_table(table.unify_dictionaries())
            if slot.source is not None:
                after = os.stat(slot.source)
                if (after.st_size, after.st_mtime_ns, after.st_ino) != slot.stat:
                    _remove(tmp)  # the file changed while it was read: this copy may be of neither
                    return
            self._written += tmp.stat().st_size
            os.replace(tmp, copy)
        except (OSError, pa.ArrowException) as exc:  # a full or read-only disk: work without copies
            _remove(tmp)
            self._broken = True
            log.warning("file cache %s: cannot write (%s); data files are decoded on every read", self.folder, exc)
            return
        if self._written > self.max_bytes // 20:
            self.trim()

    def trim(self) -> int:
        """Remove the copies read least recently until the folder holds at most 80% of
        ``max_bytes``; how many bytes were removed. Several processes may trim at once."""
        self._written = 0
        entries = []
        try:
            with os.scandir(self.folder) as it:
                for e in it:
                    if e.name.endswith(".arrow"):
                        try:
                            st = e.stat()
                        except OSError:
                            continue
                        entries.append((st.st_mtime_ns, st.st_size, e.path))
        except OSError:
            return 0
        total = sum(size for _, size, _ in entries)
        if total <= self.max_bytes:
            return 0
        removed = 0
        for _, size, name in sorted(entries):
            if total - removed <= self.max_bytes * 0.8:
                break
            if _remove(Path(name)):
                removed += size
        return removed


def _variant(variant: Collection[str] | None) -> str:
    return "strings" if variant is None else "dictionaries except " + "\x1f".join(sorted(variant))


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False
