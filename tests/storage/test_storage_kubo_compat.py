"""CIDs must be byte-identical to Kubo's: checked against the real Kubo library.

The bundled Kubo only computes default-profile (CIDv0) CIDs, so the CIDv1/raw-leaves
profile is checked against published CIDs and by proving its DAG has exactly Kubo's
shape: rebuilding it with dag-pb leaves must reproduce Kubo's CIDv0.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from storage_testing import KuboReference

from offchain.storage import (
    CHUNK_SIZE,
    CID,
    CIDV1_RAW_LEAVES,
    DAG_PB,
    KUBO_DEFAULT,
    MAX_LINKS,
    RAW,
    ImportProfile,
    PBLink,
    PBNode,
    UnixFSData,
    UnixFSType,
    compute_cid,
    import_bytes,
    import_stream,
)

SIZES = {
    "empty": 0,
    "tiny": 12,
    "one-chunk-minus-1": CHUNK_SIZE - 1,
    "exactly-one-chunk": CHUNK_SIZE,
    "one-chunk-plus-1": CHUNK_SIZE + 1,
    "multi-chunk": 5 * CHUNK_SIZE + 123,
    "full-first-level": MAX_LINKS * CHUNK_SIZE,
}


def pseudo_random(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size) if size else b""


def collect(data: bytes, profile: ImportProfile = KUBO_DEFAULT) -> tuple[CID, dict[CID, bytes]]:
    blocks: dict[CID, bytes] = {}
    result = import_bytes(data, profile=profile, sink=blocks.__setitem__)
    return result.cid, blocks


def rebuild_with_dag_pb_leaves(cid: CID, blocks: dict[CID, bytes]) -> tuple[CID, int, int]:
    """Re-encode a raw-leaves CIDv1 DAG as Kubo's default profile: (cid, tsize, filesize)."""
    block = blocks[cid]
    if cid.codec == RAW:
        leaf = PBNode(data=UnixFSData(UnixFSType.FILE, data=block or None,
                                      filesize=len(block)).encode()).encode()
        return CID.for_block(leaf, codec=DAG_PB, version=0), len(leaf), len(block)
    node = PBNode.decode(block)
    unixfs = UnixFSData.decode(node.data or b"")
    children = [rebuild_with_dag_pb_leaves(link.cid, blocks) for link in node.links]
    assert [size for _, _, size in children] == list(unixfs.blocksizes)
    rebuilt = PBNode(data=unixfs.encode(),
                     links=tuple(PBLink(child, "", tsize) for child, tsize, _ in children)).encode()
    tsize = len(rebuilt) + sum(tsize for _, tsize, _ in children)
    return CID.for_block(rebuilt, codec=DAG_PB, version=0), tsize, unixfs.filesize or 0


def assert_v1_dag_shape(root: CID, blocks: dict[CID, bytes], size: int) -> None:
    for cid, block in blocks.items():
        assert cid.version == 1
        if cid.codec == RAW:
            assert len(block) <= CHUNK_SIZE
        else:
            assert cid.codec == DAG_PB
            assert 1 <= len(PBNode.decode(block).links) <= MAX_LINKS
    if size <= CHUNK_SIZE:
        assert root.codec == RAW, "a single-chunk file is its raw leaf in CIDv1"


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_default_profile_matches_kubo(size: int, kubo: KuboReference, tmp_path: Path) -> None:
    data = b"hello world\n" if size == 12 else pseudo_random(size)
    assert compute_cid(data) == kubo.cid_of_bytes(data, tmp_path)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_cidv1_raw_leaves_has_kubo_layout(size: int, kubo: KuboReference,
                                          tmp_path: Path) -> None:
    data = b"hello world\n" if size == 12 else pseudo_random(size)
    root, blocks = collect(data, CIDV1_RAW_LEAVES)
    assert_v1_dag_shape(root, blocks, size)
    assert str(root).startswith("bafkrei" if size <= CHUNK_SIZE else "bafybei")
    rebuilt, _, file_size = rebuild_with_dag_pb_leaves(root, blocks)
    assert file_size == size
    assert str(rebuilt) == kubo.cid_of_bytes(data, tmp_path)


def test_cidv1_published_vectors() -> None:
    assert compute_cid(b"", cid_version=1) == \
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert compute_cid(b"hello world", cid_version=1) == \
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def test_known_default_profile_vectors() -> None:
    assert compute_cid(b"hello world\n") == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert compute_cid(b"") == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert import_bytes(b"hello world\n").dag_size == 20


def test_multi_level_file_matches_kubo(kubo: KuboReference, tmp_path: Path) -> None:
    """More than 174 chunks (> 45.6 MB) forces a second level of internal nodes."""
    size = MAX_LINKS * CHUNK_SIZE + CHUNK_SIZE // 2
    path = tmp_path / "multi-level.bin"
    path.write_bytes(pseudo_random(size, seed=11))
    with path.open("rb") as handle:
        root_links: list[int] = []

        def note_root(cid: CID, block: bytes) -> None:
            if cid.codec == DAG_PB:
                root_links[:] = [len(PBNode.decode(block).links)]

        result = import_stream(handle, sink=note_root)
    assert result.file_size == size
    assert root_links == [2], "root should hold one full subtree plus the remainder"
    assert str(result.cid) == kubo.cid_of_file(path)
