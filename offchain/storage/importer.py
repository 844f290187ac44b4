"""Turn a byte stream into a UnixFS file DAG exactly as ``ipfs add`` does.

Mirrors Kubo's importer (fixed-size chunker, balanced layout) so that the same bytes
and settings give the same CID here and on any Kubo node: that is what lets a job
reference data by CID on chain and have every party verify it independently.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from .dagpb import PBLink, PBNode, UnixFSData, UnixFSType
from .multiformats import CID, DAG_PB, RAW

CHUNK_SIZE: Final = 256 * 1024
"""Kubo's default ``size-262144`` chunker."""

MAX_LINKS: Final = 174
"""Kubo's balanced-layout fan-out (links per internal node)."""

BlockSink = Callable[[CID, bytes], None]
"""Receives every block the importer produces, children before parents."""


class Readable(Protocol):
    """Anything with a binary ``read``: files, sockets' file objects, ``BytesIO``."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ImportProfile:
    """CID settings of an import, as ``ipfs add`` flags.

    ``raw_leaves`` left as ``None`` follows Kubo: raw leaves exactly when CIDv1 is used.
    """

    cid_version: int = 0
    raw_leaves: bool | None = None

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError(f"cid_version must be 0 or 1, not {self.cid_version!r}")

    @property
    def uses_raw_leaves(self) -> bool:
        return self.raw_leaves if self.raw_leaves is not None else self.cid_version == 1


KUBO_DEFAULT: Final = ImportProfile(cid_version=0)
"""``ipfs add``: CIDv0, leaves are dag-pb UnixFS nodes."""

CIDV1_RAW_LEAVES: Final = ImportProfile(cid_version=1)
"""``ipfs add --cid-version=1``: CIDv1 base32, raw leaves."""


@dataclass(frozen=True)
class ImportResult:
    """Root CID of an import plus the two sizes Kubo reports."""

    cid: CID
    file_size: int
    """Number of content bytes."""
    dag_size: int
    """Cumulative size of all blocks (the ``Size`` field of ``ipfs add``'s output)."""


@dataclass(frozen=True)
class _Child:
    cid: CID
    dag_size: int
    file_size: int


class _BalancedBuilder:
    """Kubo's balanced layout: fill a node with up to 174 subtrees of the level below,
    then grow a new root above it while data remains."""

    def __init__(self, reader: Readable, profile: ImportProfile, sink: BlockSink) -> None:
        self._reader = reader
        self._profile = profile
        self._sink = sink
        self._pending = self._read_chunk()

    def _read_chunk(self) -> bytes | None:
        """Read a full chunk, tolerating short reads; ``None`` once the stream is exhausted."""
        parts: list[bytes] = []
        missing = CHUNK_SIZE
        while missing:
            part = self._reader.read(missing)
            if not part:
                break
            parts.append(part)
            missing -= len(part)
        chunk = b"".join(parts)
        return chunk or None

    def _done(self) -> bool:
        return self._pending is None

    def _emit(self, block: bytes, codec: int, version: int) -> CID:
        cid = CID.for_block(block, codec=codec, version=version)
        self._sink(cid, block)
        return cid

    def _leaf(self, chunk: bytes) -> _Child:
        if self._profile.uses_raw_leaves:
            return _Child(self._emit(chunk, RAW, 1), len(chunk), len(chunk))
        # Kubo leaves the Data field out entirely (not empty) for the empty file.
        unixfs = UnixFSData(UnixFSType.FILE, data=chunk or None, filesize=len(chunk))
        block = PBNode(data=unixfs.encode()).encode()
        return _Child(self._emit(block, DAG_PB, self._profile.cid_version), len(block), len(chunk))

    def _next_leaf(self) -> _Child:
        chunk = self._pending
        assert chunk is not None
        self._pending = self._read_chunk()
        return self._leaf(chunk)

    def _internal(self, children: list[_Child]) -> _Child:
        file_size = sum(child.file_size for child in children)
        unixfs = UnixFSData(
            UnixFSType.FILE,
            filesize=file_size,
            blocksizes=tuple(child.file_size for child in children),
        )
        links = tuple(PBLink(child.cid, "", child.dag_size) for child in children)
        block = PBNode(data=unixfs.encode(), links=links).encode()
        cid = self._emit(block, DAG_PB, self._profile.cid_version)
        return _Child(cid, len(block) + sum(child.dag_size for child in children), file_size)

    def _fill(self, children: list[_Child], depth: int) -> _Child:
        while len(children) < MAX_LINKS and not self._done():
            children.append(self._next_leaf() if depth == 1 else self._fill([], depth - 1))
        return self._internal(children)

    def build(self) -> _Child:
        if self._done():
            # An empty file is a single empty leaf, in both profiles.
            return self._leaf(b"")
        root = self._next_leaf()
        depth = 1
        while not self._done():
            root = self._fill([root], depth)
            depth += 1
        return root


def _discard(_cid: CID, _block: bytes) -> None:
    """Sink for hash-only imports."""


def import_stream(reader: Readable | BinaryIO, *, profile: ImportProfile = KUBO_DEFAULT,
                  sink: BlockSink | None = None) -> ImportResult:
    """Chunk ``reader`` and build its DAG, passing each block to ``sink``; return the root."""
    root = _BalancedBuilder(reader, profile, sink or _discard).build()
    return ImportResult(root.cid, root.file_size, root.dag_size)


def import_bytes(data: bytes, *, profile: ImportProfile = KUBO_DEFAULT,
                 sink: BlockSink | None = None) -> ImportResult:
    """:func:`import_stream` for in-memory data."""
    return import_stream(io.BytesIO(data), profile=profile, sink=sink)


def compute_cid(data: bytes, *, cid_version: int = 0, raw_leaves: bool | None = None) -> str:
    """The CID ``ipfs add --only-hash`` would print for ``data``, without storing anything."""
    profile = ImportProfile(cid_version=cid_version, raw_leaves=raw_leaves)
    return str(import_bytes(data, profile=profile).cid)
