"""Read UnixFS files and walk DAGs block by block, verifying every block on the way.

The walkers take a ``fetch`` callable so the same verification applies whether blocks
come from the local disk or from a remote daemon that might be faulty or malicious.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from .dagpb import PBNode, UnixFSData, UnixFSType
from .errors import ContentTooLarge, FetchTimeout, InvalidBlock
from .multiformats import CID, DAG_PB, IDENTITY, RAW, codec_name

BlockFetcher = Callable[[CID], bytes]
"""Returns the bytes stored under a CID (unverified) or raises ``ContentNotFound``."""


def fetch_verified(cid: CID, fetch: BlockFetcher) -> bytes:
    """Fetch one block and check that it hashes to ``cid``; identity CIDs need no fetch."""
    if cid.hash_code == IDENTITY:
        return cid.digest
    block = fetch(cid)
    cid.verify(block)
    return block


def _check_deadline(deadline: float | None, cid: CID) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise FetchTimeout(f"timed out before block {cid} arrived")


def _file_node(cid: CID, block: bytes) -> tuple[UnixFSData, PBNode]:
    node = PBNode.decode(block)
    if node.data is None:
        raise InvalidBlock(f"dag-pb block {cid} carries no UnixFS data")
    unixfs = UnixFSData.decode(node.data)
    if unixfs.type not in (UnixFSType.FILE, UnixFSType.RAW):
        raise InvalidBlock(f"{cid} is a UnixFS {unixfs.type.name.lower()}, not a file")
    if unixfs.blocksizes and len(unixfs.blocksizes) != len(node.links):
        raise InvalidBlock(
            f"{cid} lists {len(unixfs.blocksizes)} block sizes for {len(node.links)} links"
        )
    if node.links and not unixfs.blocksizes:
        raise InvalidBlock(f"{cid} has links but no block sizes")
    own = len(unixfs.data or b"")
    if unixfs.filesize is not None and unixfs.filesize != own + sum(unixfs.blocksizes):
        raise InvalidBlock(f"{cid} declares a file size that its children do not add up to")
    return unixfs, node


def iter_file(root: CID | str, fetch: BlockFetcher, *, max_size: int,
              deadline: float | None = None) -> Iterator[bytes]:
    """Yield the content of the UnixFS file (or raw block) ``root``, in order.

    Each block is verified against its CID before any of its bytes are yielded, the
    declared sizes must be consistent from the root down, and the total may not exceed
    ``max_size``: a wrong, oversized or late object raises instead of yielding a prefix
    that looks complete.
    """
    root_cid = CID.parse(root)
    # Stack of (cid, size the parent says this subtree holds, or None for the root).
    stack: list[tuple[CID, int | None]] = [(root_cid, None)]
    emitted = 0
    while stack:
        cid, expected_size = stack.pop()
        _check_deadline(deadline, cid)
        block = fetch_verified(cid, fetch)
        if cid.codec == RAW:
            size, data, children = len(block), block, []
        elif cid.codec == DAG_PB:
            unixfs, node = _file_node(cid, block)
            size = len(unixfs.data or b"") + sum(unixfs.blocksizes)
            data = unixfs.data or b""
            children = list(zip((link.cid for link in node.links), unixfs.blocksizes, strict=True))
        else:
            raise InvalidBlock(f"cannot read a {codec_name(cid.codec)} block ({cid}) as a file")
        if expected_size is not None and size != expected_size:
            raise InvalidBlock(f"{cid} holds {size} bytes but its parent expects {expected_size}")
        if expected_size is None and size > max_size:
            raise ContentTooLarge(f"{root_cid} is {size} bytes, over the {max_size}-byte limit")
        emitted += len(data)
        if emitted > max_size:
            raise ContentTooLarge(f"{root_cid} exceeds the {max_size}-byte limit")
        if data:
            yield data
        stack.extend(reversed(children))


def read_file(root: CID | str, fetch: BlockFetcher, *, max_size: int,
              deadline: float | None = None) -> bytes:
    """:func:`iter_file`, joined into one ``bytes`` object."""
    return b"".join(iter_file(root, fetch, max_size=max_size, deadline=deadline))


def iter_dag(root: CID | str, fetch: BlockFetcher, *,
             deadline: float | None = None) -> Iterator[CID]:
    """Yield every distinct CID reachable from ``root`` after verifying its block.

    Follows dag-pb links; raw blocks are leaves. Blocks of other codecs are verified but
    their links are not followed (this layer does not decode them).
    """
    seen: set[bytes] = set()
    stack = [CID.parse(root)]
    while stack:
        cid = stack.pop()
        if cid.multihash in seen:
            continue
        seen.add(cid.multihash)
        _check_deadline(deadline, cid)
        block = fetch_verified(cid, fetch)
        if cid.codec == DAG_PB:
            stack.extend(link.cid for link in reversed(PBNode.decode(block).links))
        yield cid
