"""The on-disk block store: add/cat, block access, verification on read, pins, limits."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.storage import (
    CHUNK_SIZE,
    CID,
    DAG_PB,
    RAW,
    Blockstore,
    ContentNotFound,
    ContentTooLarge,
    FetchTimeout,
    IntegrityError,
    InvalidBlock,
    InvalidCID,
    PBLink,
    PBNode,
    UnixFSData,
    UnixFSType,
    compute_cid,
    import_bytes,
)
from offchain.storage.multiformats import IDENTITY, compute_multihash

MULTI_CHUNK = random.Random(3).randbytes(3 * CHUNK_SIZE + 999)
shared_settings = settings(max_examples=25, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Blockstore:
    return Blockstore(tmp_path_factory.mktemp("blocks"), fsync=False)


@pytest.fixture()
def store(tmp_path: Path) -> Blockstore:
    return Blockstore(tmp_path / "store")


def block_files(store: Blockstore) -> list[Path]:
    return sorted(path for path in (store.root / "blocks").rglob("*") if path.is_file())


@shared_settings
@given(data=st.binary(max_size=2048), cid_version=st.sampled_from([0, 1]))
def test_add_cat_roundtrip_and_deterministic_cid(shared_store: Blockstore, data: bytes,
                                                 cid_version: int) -> None:
    cid = shared_store.add(data, cid_version=cid_version)
    assert cid == compute_cid(data, cid_version=cid_version)
    assert shared_store.add(data, cid_version=cid_version) == cid
    assert shared_store.cat(cid) == data


@pytest.mark.parametrize("cid_version", [0, 1])
def test_multi_chunk_roundtrip(store: Blockstore, cid_version: int) -> None:
    cid = store.add(MULTI_CHUNK, cid_version=cid_version)
    assert store.cat(cid) == MULTI_CHUNK
    assert b"".join(store.iter_cat(cid)) == MULTI_CHUNK
    assert len(block_files(store)) == 5  # four leaves and the root
    assert not list(store.root.rglob(".tmp-*")), "temporary files must not survive"


def test_add_file_streams_from_disk(store: Blockstore, tmp_path: Path) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(MULTI_CHUNK)
    assert store.add_file(path, cid_version=1) == compute_cid(MULTI_CHUNK, cid_version=1)


@shared_settings
@given(data=st.binary(min_size=1, max_size=600), position=st.integers(min_value=0),
       flip=st.integers(min_value=1, max_value=255))
def test_tampered_block_raises_integrity_error(tmp_path_factory: pytest.TempPathFactory,
                                               data: bytes, position: int, flip: int) -> None:
    store = Blockstore(tmp_path_factory.mktemp("tamper"), fsync=False)
    cid = store.add(data * (CHUNK_SIZE // len(data) + 2))  # at least two leaves and a root
    victim = block_files(store)[position % len(block_files(store))]
    content = bytearray(victim.read_bytes())
    content[position % len(content)] ^= flip
    victim.write_bytes(bytes(content))
    with pytest.raises(IntegrityError, match="does not match"):
        store.cat(cid)


def test_truncated_block_raises_integrity_error(store: Blockstore) -> None:
    cid = store.add(b"precious training data")
    block_files(store)[0].write_bytes(b"")
    with pytest.raises(IntegrityError):
        store.get_block(cid)


def test_put_and_get_block(store: Blockstore) -> None:
    cid = store.put_block(b"raw bytes")
    assert cid == CID.for_block(b"raw bytes", codec=RAW)
    assert store.has(cid) and store.has(str(cid))
    assert store.get_block(str(cid)) == b"raw bytes"
    with pytest.raises(IntegrityError):
        store.put_block(b"other bytes", cid)
    with pytest.raises(InvalidBlock):
        store.put_block(b"\xff\xff", codec=DAG_PB)
    with pytest.raises(ContentTooLarge):
        store.put_block(bytes(1024 * 1024 + 1))


def test_missing_content_and_bad_cids(store: Blockstore) -> None:
    absent = CID.for_block(b"never stored", codec=RAW)
    assert not store.has(absent)
    with pytest.raises(ContentNotFound, match="not in the local store"):
        store.get_block(absent)
    with pytest.raises(LookupError):
        store.cat(str(absent))
    with pytest.raises(InvalidCID):
        store.cat("definitely-not-a-cid")
    with pytest.raises(InvalidCID):
        store.has("Qm")


def test_missing_inner_block_is_not_found(store: Blockstore) -> None:
    cid = store.add(MULTI_CHUNK)
    leaf = next(path for path in block_files(store) if path.stat().st_size > CHUNK_SIZE)
    leaf.unlink()
    with pytest.raises(ContentNotFound):
        store.cat(cid)
    with pytest.raises(ContentNotFound):
        store.pin(cid)


def test_size_limit_uses_declared_size_before_fetching_children(store: Blockstore) -> None:
    cid = store.add(MULTI_CHUNK)
    for path in block_files(store):
        if path.stat().st_size > CHUNK_SIZE:
            path.unlink()  # leaves gone: only the root can be read
    with pytest.raises(ContentTooLarge, match="over the 1000-byte limit"):
        store.cat(cid, max_size=1000)
    small = store.add(b"x" * 100)
    with pytest.raises(ContentTooLarge):
        store.cat(small, max_size=99)
    assert store.cat(small, max_size=100) == b"x" * 100


def test_timeout_is_enforced_between_blocks(store: Blockstore) -> None:
    cid = store.add(MULTI_CHUNK)
    with pytest.raises(FetchTimeout):
        store.cat(cid, timeout=0)
    with pytest.raises(TimeoutError):
        store.cat(cid, timeout=-1)


def test_non_file_dags_are_invalid_block(store: Blockstore) -> None:
    directory = PBNode(data=UnixFSData(UnixFSType.DIRECTORY).encode()).encode()
    directory_cid = store.put_block(directory, codec=DAG_PB)
    with pytest.raises(InvalidBlock, match="directory, not a file"):
        store.cat(directory_cid)
    cbor_cid = store.put_block(b"\xa0", codec=0x71)
    with pytest.raises(InvalidBlock, match="dag-cbor"):
        store.cat(cbor_cid)


def test_inconsistent_sizes_are_invalid_block(store: Blockstore) -> None:
    leaf = store.put_block(b"abc")
    lying_parent = PBNode(
        data=UnixFSData(UnixFSType.FILE, filesize=5, blocksizes=(5,)).encode(),
        links=(PBLink(leaf, "", 3),),
    ).encode()
    with pytest.raises(InvalidBlock, match="parent expects 5"):
        store.cat(store.put_block(lying_parent, codec=DAG_PB))


def test_pins(store: Blockstore) -> None:
    pinned = store.add(b"pinned by add")
    unpinned = store.add(b"not pinned", pin=False)
    assert store.is_pinned(pinned) and not store.is_pinned(unpinned)
    assert store.pin(unpinned) == unpinned
    assert store.is_pinned(CID.parse(unpinned).to_v1())
    assert store.pins() == sorted(str(CID.parse(c).to_v1()) for c in (pinned, unpinned))
    store.unpin(pinned)
    assert not store.is_pinned(pinned)


def test_only_hash_stores_nothing(store: Blockstore) -> None:
    cid = store.add(MULTI_CHUNK, only_hash=True)
    assert cid == import_bytes(MULTI_CHUNK).cid.__str__()
    assert block_files(store) == [] and store.pins() == []


def test_identity_cids_need_no_storage(store: Blockstore) -> None:
    cid = CID(1, RAW, compute_multihash(b"inline", IDENTITY))
    assert store.has(cid)
    assert store.cat(cid) == b"inline"
    assert store.put_block(b"inline", cid) == cid
    assert block_files(store) == []


def test_cidv0_and_cidv1_share_storage(store: Blockstore) -> None:
    cid = CID.parse(store.add(b"one copy"))
    assert store.cat(cid.to_v1()) == b"one copy"
    assert len(block_files(store)) == 1
