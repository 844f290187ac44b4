"""The storage facade the workers use: one interface, a local and a remote implementation.

Whatever the backend, content is only ever returned after it has been re-hashed here
against the CID it was requested by; a backend is trusted for availability, never for
integrity.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
import urllib.parse
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import ipfshttpclient
import requests

from .blockstore import DEFAULT_MAX_CAT_SIZE, MAX_BLOCK_SIZE, Blockstore
from .dagreader import read_file
from .errors import (
    ContentNotFound,
    ContentTooLarge,
    FetchTimeout,
    IntegrityError,
    StorageError,
    StorageUnavailable,
)
from .importer import CHUNK_SIZE, ImportProfile, import_bytes, import_stream
from .multiformats import CID

# ipfshttpclient passes urllib3 a parameter it no longer needs; the warning says nothing to our users
warnings.filterwarnings("ignore", message="The 'strict' parameter is no longer needed", category=FutureWarning)

DEFAULT_TIMEOUT: Final = 60.0
# the most a worker fetches for one task artifact (model, weights, dataset, checkpoint, trace node)
MAX_ARTIFACT_BYTES: Final = 256 * 1024 * 1024
"""Seconds a ``cat`` may take before :class:`FetchTimeout`."""

DEFAULT_STORE_DIR: Final = Path("~/.dtm/ipfs")


class ContentStore(ABC):
    """Add, fetch and pin content by CID; fetched content is always verified."""

    @abstractmethod
    def add_bytes(self, data: bytes) -> str:
        """Store ``data`` as a UnixFS file; return its CID."""

    @abstractmethod
    def add_file(self, path: str | os.PathLike[str]) -> str:
        """Store a file from disk as a UnixFS file; return its CID."""

    @abstractmethod
    def cat(self, cid: str | CID, *, max_size: int = DEFAULT_MAX_CAT_SIZE,
            timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
        """The full content of ``cid``, verified; raises rather than return partial data."""

    @abstractmethod
    def pin(self, cid: str | CID) -> None:
        """Keep ``cid`` and everything it links to."""

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Release connections; the default has none."""

    def __enter__(self) -> ContentStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class LocalStore(ContentStore):
    """The embedded on-disk block store (no daemon needed)."""

    def __init__(self, directory: str | os.PathLike[str], *, cid_version: int = 0,
                 fsync: bool = True) -> None:
        self.blockstore = Blockstore(directory, fsync=fsync)
        self.profile = ImportProfile(cid_version=cid_version)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.blockstore.root)!r})"

    def add_bytes(self, data: bytes) -> str:
        return self.blockstore.add(data, cid_version=self.profile.cid_version)

    def add_file(self, path: str | os.PathLike[str]) -> str:
        return self.blockstore.add_file(path, cid_version=self.profile.cid_version)

    def cat(self, cid: str | CID, *, max_size: int = DEFAULT_MAX_CAT_SIZE,
            timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
        return self.blockstore.cat(cid, max_size=max_size, timeout=timeout)

    def pin(self, cid: str | CID) -> None:
        self.blockstore.pin(cid)


def api_address(api: str) -> tuple[str, str]:
    """Split ``IPFS_API`` into ipfshttpclient's ``(multiaddr, base path)``.

    Accepts a multiaddr (``/ip4/127.0.0.1/tcp/5001/http``) or a URL
    (``http://127.0.0.1:5001``), since both forms are common in IPFS tooling.
    """
    api = api.strip()
    if api.startswith("/"):
        return api, "api/v0"
    url = urllib.parse.urlsplit(api)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"IPFS_API must be a multiaddr or an http(s) URL, not {api!r}")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        family = "ip6" if ipaddress.ip_address(url.hostname).version == 6 else "ip4"
    except ValueError:
        family = "dns"
    base = url.path.strip("/") or "api/v0"
    return f"/{family}/{url.hostname}/tcp/{port}/{url.scheme}", base


class KuboStore(ContentStore):
    """Any Kubo RPC endpoint (a Kubo daemon, or this project's storage server).

    Files are read block by block through ``block/get`` so each block is hashed locally
    before use; adds are hashed locally too and the daemon's CID must agree.
    """

    def __init__(self, api: str = "/ip4/127.0.0.1/tcp/5001/http", *, cid_version: int = 0,
                 request_timeout: float = DEFAULT_TIMEOUT, client: Any | None = None) -> None:
        """``client`` injects a preconfigured ``ipfshttpclient.Client`` (for tests)."""
        self.api = api
        self.profile = ImportProfile(cid_version=cid_version)
        self.request_timeout = request_timeout
        if client is None:
            addr, base = api_address(api)
            # Constructed directly: ipfshttpclient.connect() refuses daemons newer than 0.7.
            client = ipfshttpclient.Client(addr=addr, base=base, session=True,
                                           timeout=request_timeout)
        self.client = client

    def __repr__(self) -> str:
        return f"KuboStore({self.api!r})"

    def close(self) -> None:
        self.client.close()

    def _add_options(self) -> dict[str, str]:
        """Pin every CID-relevant ``ipfs add`` option so the daemon's config cannot differ."""
        return {
            "cid-version": str(self.profile.cid_version),
            "raw-leaves": "true" if self.profile.uses_raw_leaves else "false",
            "chunker": f"size-{CHUNK_SIZE}",
            "hash": "sha2-256",
            "pin": "true",
        }

    def _check_added(self, expected: CID, reported: Any) -> str:
        if str(reported) != str(expected):
            raise IntegrityError(
                f"daemon reported CID {reported} for content that hashes to {expected}"
            )
        return str(expected)

    def add_bytes(self, data: bytes) -> str:
        expected = import_bytes(data, profile=self.profile).cid
        with _translated_errors("add"):
            reported = self.client.add_bytes(data, opts=self._add_options())
        return self._check_added(expected, reported)

    def add_file(self, path: str | os.PathLike[str]) -> str:
        with open(path, "rb") as handle:
            expected = import_stream(handle, profile=self.profile).cid
        with _translated_errors("add"):
            # add() builds its own option dict over ``opts``, so go through its arguments.
            response = self.client.add(
                os.fspath(path), cid_version=self.profile.cid_version,
                raw_leaves=self.profile.uses_raw_leaves, chunker=f"size-{CHUNK_SIZE}",
                pin=True, opts={"hash": "sha2-256"},
            )
        return self._check_added(expected, response["Hash"])

    def _fetch_block(self, cid: CID, deadline: float) -> bytes:
        """``block/get`` one block, bounded in size and time (verified by the caller)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchTimeout(f"timed out before block {cid} arrived")
        parts: list[bytes] = []
        received = 0
        with _translated_errors(f"block/get {cid}"):
            stream: Iterator[bytes] = self.client.block.get(str(cid), stream=True,
                                                            timeout=remaining)
            try:
                for part in stream:
                    received += len(part)
                    if received > MAX_BLOCK_SIZE:
                        raise ContentTooLarge(
                            f"daemon sent more than {MAX_BLOCK_SIZE} bytes for block {cid}"
                        )
                    if time.monotonic() > deadline:
                        raise FetchTimeout(f"block {cid} did not arrive in time")
                    parts.append(part)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        return b"".join(parts)

    def cat(self, cid: str | CID, *, max_size: int = DEFAULT_MAX_CAT_SIZE,
            timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
        deadline = time.monotonic() + (timeout if timeout is not None else self.request_timeout)
        return read_file(CID.parse(cid), lambda block_cid: self._fetch_block(block_cid, deadline),
                         max_size=max_size, deadline=deadline)

    def pin(self, cid: str | CID) -> None:
        parsed = CID.parse(cid)
        with _translated_errors(f"pin/add {parsed}"):
            self.client.pin.add(str(parsed))


@contextlib.contextmanager
def _translated_errors(action: str) -> Iterator[None]:
    """Map ipfshttpclient/requests failures onto this layer's error types."""
    exceptions = ipfshttpclient.exceptions
    try:
        yield
    except StorageError:
        raise
    except (exceptions.TimeoutError, requests.exceptions.Timeout) as error:
        raise FetchTimeout(f"{action}: timed out") from error
    except exceptions.ErrorResponse as error:
        message = str(error)
        if "not found" in message or "could not find" in message:
            raise ContentNotFound(f"{action}: {message}") from error
        raise StorageError(f"{action}: daemon error: {message}") from error
    except (exceptions.Error, requests.exceptions.RequestException) as error:
        raise StorageUnavailable(f"{action}: {error}") from error


def default_store_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$DTM_HOME/ipfs`` if ``DTM_HOME`` is set, else ``~/.dtm/ipfs``."""
    home = env.get("DTM_HOME")
    return (Path(home) / "ipfs" if home else DEFAULT_STORE_DIR).expanduser()


def open_store(env: Mapping[str, str] = os.environ,
               default_dir: str | os.PathLike[str] | None = None) -> ContentStore:
    """The store workers should use: ``KuboStore`` if ``IPFS_API`` is set, else ``LocalStore``.

    ``default_dir`` overrides :func:`default_store_dir` for the local store.
    """
    api = env.get("IPFS_API", "").strip()
    if api:
        return KuboStore(api)
    return LocalStore(default_dir if default_dir is not None else default_store_dir(env))
