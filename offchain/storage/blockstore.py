"""A content-addressed block store in a plain directory.

Layout::

    <root>/blocks/<shard>/<base32 multihash>   one file per block
    <root>/pins/<CIDv1>                        one empty file per pinned root

Blocks are keyed by multihash (like Kubo), so a block named by CIDv0 and CIDv1 is stored
once. Every write goes to a temporary file that is renamed into place, so a crash or a
concurrent reader never sees a half-written block; every read is re-hashed.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from .dagpb import PBNode
from .dagreader import fetch_verified, iter_dag, iter_file, read_file
from .errors import ContentNotFound, ContentTooLarge
from .importer import KUBO_DEFAULT, ImportProfile, ImportResult, Readable, import_stream
from .multiformats import CID, DAG_PB, IDENTITY, RAW

MAX_BLOCK_SIZE: Final = 1024 * 1024
"""Largest block accepted by ``put_block``: Kubo's limit for blocks that peers exchange."""

DEFAULT_MAX_CAT_SIZE: Final = 1024 * 1024 * 1024
"""Default ceiling for ``cat`` so a hostile CID cannot make a reader buffer without bound."""


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


class Blockstore:
    """Blocks on disk plus the UnixFS ``add``/``cat`` operations built on them."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        """``fsync`` flushes each block to stable storage before it becomes visible."""
        self.root = Path(root).expanduser()
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._fsync = fsync
        self._blocks.mkdir(parents=True, exist_ok=True)
        self._pins.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Blockstore({str(self.root)!r})"

    # -- blocks ---------------------------------------------------------------------

    def _block_path(self, cid: CID) -> Path:
        name = base64.b32encode(cid.multihash).decode("ascii").rstrip("=").lower()
        return self._blocks / name[-3:-1] / name

    def _write_atomically(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                if self._fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def has(self, cid: CID | str) -> bool:
        """True if the block is stored locally (identity CIDs always are)."""
        parsed = CID.parse(cid)
        return parsed.hash_code == IDENTITY or self._block_path(parsed).is_file()

    def _read_block(self, cid: CID) -> bytes:
        """Stored bytes without verification; callers verify (see ``dagreader``)."""
        try:
            return self._block_path(cid).read_bytes()
        except FileNotFoundError:
            raise ContentNotFound(f"block {cid} is not in the local store") from None

    def get_block(self, cid: CID | str) -> bytes:
        """The block's bytes, verified against the CID (``IntegrityError`` if corrupted)."""
        return fetch_verified(CID.parse(cid), self._read_block)

    def put_block(self, data: bytes, cid: CID | str | None = None, *, codec: int = RAW,
                  cid_version: int = 1) -> CID:
        """Store one block and return its CID.

        With ``cid`` the bytes must hash to it (``IntegrityError`` otherwise); without,
        the CID is computed with ``codec`` and ``cid_version``. dag-pb blocks must decode.
        """
        if len(data) > MAX_BLOCK_SIZE:
            raise ContentTooLarge(f"block of {len(data)} bytes exceeds {MAX_BLOCK_SIZE} bytes")
        if cid is None:
            target = CID.for_block(data, codec=codec, version=cid_version)
        else:
            target = CID.parse(cid)
            target.verify(data)
        if target.codec == DAG_PB:
            PBNode.decode(data)
        self._store(target, data)
        return target

    def _store(self, cid: CID, data: bytes) -> None:
        if cid.hash_code == IDENTITY:
            return
        path = self._block_path(cid)
        try:
            if path.stat().st_size == len(data):
                return  # already present; content addressing makes a rewrite pointless
        except FileNotFoundError:
            pass
        self._write_atomically(path, data)

    # -- files ----------------------------------------------------------------------

    def add_stream(self, reader: Readable, *, profile: ImportProfile = KUBO_DEFAULT,
                   pin: bool = True, only_hash: bool = False) -> ImportResult:
        """Import a stream as a UnixFS file; return its root CID and sizes."""
        result = import_stream(reader, profile=profile,
                               sink=None if only_hash else self._store)
        if pin and not only_hash:
            self._record_pin(result.cid)
        return result

    def add(self, data: bytes, *, cid_version: int = 0, raw_leaves: bool | None = None,
            pin: bool = True, only_hash: bool = False) -> str:
        """Store ``data`` as a UnixFS file like ``ipfs add``; return the root CID string."""
        profile = ImportProfile(cid_version=cid_version, raw_leaves=raw_leaves)
        return str(self.add_stream(io.BytesIO(data), profile=profile, pin=pin,
                                   only_hash=only_hash).cid)

    def add_file(self, path: str | os.PathLike[str], *, cid_version: int = 0,
                 raw_leaves: bool | None = None, pin: bool = True) -> str:
        """Stream a file from disk into the store without loading it whole."""
        profile = ImportProfile(cid_version=cid_version, raw_leaves=raw_leaves)
        with open(path, "rb") as handle:
            return str(self.add_stream(handle, profile=profile, pin=pin).cid)

    def iter_cat(self, cid: CID | str, *, max_size: int = DEFAULT_MAX_CAT_SIZE,
                 timeout: float | None = None) -> Iterator[bytes]:
        """Stream a file's content; every block is verified before its bytes are yielded."""
        return iter_file(CID.parse(cid), self._read_block, max_size=max_size,
                         deadline=_deadline(timeout))

    def cat(self, cid: CID | str, *, max_size: int = DEFAULT_MAX_CAT_SIZE,
            timeout: float | None = None) -> bytes:
        """A file's full content, verified block by block against the CID."""
        return read_file(CID.parse(cid), self._read_block, max_size=max_size,
                         deadline=_deadline(timeout))

    # -- pins -----------------------------------------------------------------------

    def _pin_path(self, cid: CID) -> Path:
        return self._pins / str(cid.to_v1())

    def _record_pin(self, cid: CID) -> None:
        self._write_atomically(self._pin_path(cid), b"")

    def pin(self, cid: CID | str) -> str:
        """Pin a root after checking that its whole DAG is present and intact."""
        parsed = CID.parse(cid)
        for _ in iter_dag(parsed, self._read_block):
            pass
        self._record_pin(parsed)
        return str(parsed)

    def unpin(self, cid: CID | str) -> None:
        """Remove a pin; blocks stay (there is no garbage collector)."""
        self._pin_path(CID.parse(cid)).unlink(missing_ok=True)

    def is_pinned(self, cid: CID | str) -> bool:
        return self._pin_path(CID.parse(cid)).is_file()

    def pins(self) -> list[str]:
        """Pinned roots, as CIDv1 strings."""
        return sorted(path.name for path in self._pins.iterdir() if not path.name.startswith("."))
