"""Data where it lives: objects in S3 (and S3-compatible stores), Google Cloud Storage and Azure
Blob Storage, named by URL (``s3://bucket/key``, ``gs://bucket/key``, ``abfs://container/key``).

Each scheme is served by its fsspec filesystem (``s3fs``, ``gcsfs``, ``adlfs``: the ``s3``, ``gcs``
and ``azure`` extras). Credentials come only from each cloud's standard chain (environment
variables, profile files, workload identity), never from our config files; an endpoint override
(an S3-compatible store such as MinIO) may be given in config or by the cloud's own environment
variable (``AWS_ENDPOINT_URL``). A ``file://`` URL is a local path.

An object is listed with its size and version (the S3 ETag, the GCS generation, the Azure ETag),
which is what the machine file cache keys it by (:mod:`controller.adapters.filecache`): an
unchanged object is read once per machine, a rewritten one again.

Errors, each one line naming the URL (never a credential):

``DataError`` (exit 2)
    No such bucket, prefix or object; access denied; no credentials in the chain; an object that
    is not readable data.
``RetryLater`` (exit 75)
    The store cannot be reached or went away during a read (connection refused or reset, a
    timeout, a 5xx answer after the client's retries).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from controller.errors import DataError, RetryLater

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")

_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "az": ("adlfs", "azure"),
}
"""Remote schemes: the package that serves each, and the extra that installs it."""

WHOLE_OBJECT_BYTES = 64 * 2**20
"""Objects up to this size are read with one request; larger ones by ranges (a Parquet file's
footer, then only the row groups a window needs)."""

_OUTAGE_MODULES = ("aiohttp", "botocore", "aiobotocore", "urllib3", "requests", "google", "azure", "socket", "ssl")


def is_url(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(text, str) and _URL.match(text) is not None


def is_remote(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` names an object store (a URL other than ``file://``)."""
    return is_url(text) and not str(text).lower().startswith("file://")


def local_path(text: str | os.PathLike[str]) -> Path:
    """``text`` as a local path: a ``file://`` URL's path, or the path itself."""
    if is_url(text):
        parts = urlsplit(str(text))
        if parts.scheme.lower() != "file":
            raise DataError(f"{shown(str(text))}: not a local path")
        if parts.netloc not in ("", "localhost"):
            raise DataError(f"{shown(str(text))}: a file:// URL names a path on this machine (file:///path)")
        return Path(unquote(parts.path))
    return Path(text)


def shown(url: str) -> str:
    """``url`` without anything that could be a credential (user info, query, fragment)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True)
class StoreObject:
    """One object as listed: its URL, size in bytes and version (empty when the store gives none)."""

    url: str
    size: int
    version: str

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


class ObjectStore:
    """One store's filesystem, for the URLs of one scheme (see the module docstring)."""

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        match = _URL.match(url)
        if match is None or match.group(1).lower() not in _EXTRAS:
            raise DataError(f"{shown(url)}: unsupported URL scheme (use s3://, gs://, abfs:// or file://)")
        self.scheme = match.group(1).lower()
        package, extra = _EXTRAS[self.scheme]
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec comes with the base install
            raise DataError(f"{shown(url)}: reading object stores needs fsspec") from None
        options: dict[str, Any] = {"use_listings_cache": False}  # a listing must show rewrites
        if self.scheme in ("s3", "s3a"):
            # Few and short retries: a check that cannot reach its store is retried later, as a whole.
            options["config_kwargs"] = {
                "connect_timeout": 5,
                "read_timeout": 60,
                "retries": {"max_attempts": 2, "mode": "standard"},
            }
        if endpoint_url:
            if self.scheme in ("abfs", "abfss", "az"):
                options["account_host"] = urlsplit(endpoint_url).netloc or endpoint_url
            else:
                options["endpoint_url"] = endpoint_url
        options["skip_instance_cache"] = True  # :func:`store_for` keeps the stores
        try:
            self.fs: Any = fsspec.filesystem(self.scheme, **options)
            if hasattr(self.fs, "retries"):
                self.fs.retries = 2  # s3fs's own retries of a broken read, on top of botocore's
        except ImportError:
            raise DataError(
                f"{shown(url)}: {self.scheme}:// URLs need the {package} package "
                f"(pip install 'retrain-controller[{extra}]')"
            ) from None

    # listing ------------------------------------------------------------------------------------
    def list(self, url: str) -> list[StoreObject]:
        """The objects ``url`` names: one object, every object under a prefix (recursively), or
        those matching a glob; sorted by URL. DataError when there are none."""
        with errors(url):
            path = self.fs._strip_protocol(url)
            if any(ch in path for ch in "*?["):
                found = self.fs.glob(path, detail=True)
            else:
                found = self.fs.find(path, detail=True)
                if not found:
                    info = self.fs.info(path)  # a single object, or FileNotFoundError
                    found = {path: info} if info.get("type") == "file" else {}
        objects = [
            StoreObject(self._url(p), int(info.get("size") or 0), _version(info))
            for p, info in found.items()
            if info.get("type", "file") == "file" and not _hidden(p)
        ]
        if not objects:
            raise DataError(f"{shown(url)}: no objects found")
        return sorted(objects, key=lambda o: o.url)

    def _url(self, path: str) -> str:
        return f"{self.scheme}://{path}"

    # reading ------------------------------------------------------------------------------------
    def read(self, obj: StoreObject) -> bytes:
        """The whole object, in one request."""
        with errors(obj.url):
            # s3fs asks for the size first (a HEAD) unless told to read in one request
            one_request = {"max_concurrency": 1} if self.scheme in ("s3", "s3a") else {}
            data: bytes = self.fs.cat_file(self.fs._strip_protocol(obj.url), **one_request)
        return data

    @contextlib.contextmanager
    def open(self, obj: StoreObject) -> Iterator[IO[bytes]]:
        """The object as a seekable file that reads ranges on demand (for large objects)."""
        with errors(obj.url):
            handle = self.fs.open(self.fs._strip_protocol(obj.url), "rb", size=obj.size, cache_type="none")
        try:
            yield handle
        finally:
            handle.close()

    def download(self, obj: StoreObject, target: Path) -> None:
        """Copy the object to ``target``, whole or not at all."""
        tmp = target.with_name(f".{target.name}.part")
        try:
            with errors(obj.url):
                self.fs.get_file(self.fs._strip_protocol(obj.url), str(tmp))
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()


_stores: dict[tuple[str, str | None, tuple[str, ...]], ObjectStore] = {}
_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_PROFILE")
"""What a client reads from the environment once (the access key id names an identity; it is no secret)."""


def store_for(url: str, endpoint_url: str | None = None) -> ObjectStore:
    """The (shared) store of ``url``'s scheme and endpoint. A client keeps the endpoint and the
    identity it started with, so a change of either in the environment gets a new client."""
    scheme = url.split("://", 1)[0].lower()
    env = tuple(os.environ.get(v, "") for v in _CLIENT_ENV)
    key = (scheme, endpoint_url, env)
    if key not in _stores:
        _stores[key] = ObjectStore(url, endpoint_url)
    return _stores[key]


@contextlib.contextmanager
def local_copy(location: str | os.PathLike[str], what: str = "file") -> Iterator[Path]:
    """A local path with the content of ``location``: the path itself for a local file, or a
    temporary copy of one remote object (removed afterwards). Lets commands that take one input
    file (drift, performance, backtest, costs import) read it from a bucket as well.

    >>> with local_copy("file:///etc/hostname") as p:
    ...     str(p)
    '/etc/hostname'
    """
    if not is_remote(location):
        yield local_path(location)
        return
    url = str(location)
    store = store_for(url)
    objects = store.list(url)
    if len(objects) != 1 or objects[0].url.rstrip("/") != f"{store.scheme}://{store.fs._strip_protocol(url)}":
        raise DataError(f"{shown(url)}: the {what} must be one object, found {len(objects)} under this prefix")
    folder = Path(tempfile.mkdtemp(prefix="retrain-object-"))
    try:
        target = folder / objects[0].name
        store.download(objects[0], target)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def errors(url: str) -> Iterator[None]:
    """Turn a store client's exceptions into one-line DataError / RetryLater (module docstring)."""
    where = shown(url)
    try:
        yield
    except (DataError, RetryLater):
        raise
    except FileNotFoundError:
        raise DataError(f"{where}: no such bucket, prefix or object") from None
    except PermissionError:
        raise DataError(
            f"{where}: access denied (the credentials of the standard chain may not read it)"
        ) from None
    except Exception as exc:
        name = type(exc).__name__
        if name == "NoCredentialsError":
            raise DataError(f"{where}: no credentials found (set them in the cloud's standard chain)") from None
        if _is_outage(exc):
            raise RetryLater(f"{where}: object store unreachable ({name})") from None
        first = (str(exc).splitlines() or [""])[0][:160]
        raise DataError(f"{where}: cannot read ({name}: {first})") from None


def _is_outage(exc: BaseException) -> bool:
    """A connection that failed, broke or timed out, or a server error: worth trying again later."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        module = type(current).__module__.split(".", 1)[0]
        if module in _OUTAGE_MODULES:
            return True
        current = current.__cause__ or current.__context__
    return isinstance(exc, OSError) and ("Service Unavailable" in str(exc) or "InternalError" in str(exc))


def _version(info: dict[str, Any]) -> str:
    """The object's version as its store lists it: ETag (S3, Azure), generation (GCS)."""
    for key in ("ETag", "etag", "generation", "VersionId", "version_id", "md5Hash"):
        value = info.get(key)
        if value:
            return str(value).strip('"')
    mtime = info.get("LastModified") or info.get("last_modified") or info.get("mtime") or ""
    return f"modified {mtime}" if mtime else ""


def _hidden(path: str) -> bool:
    """Markers and metadata files that are not data (``_SUCCESS``, ``_common_metadata``, ``.crc``)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith(("_", ".")) or name.endswith(".crc")
