"""Varint, base58/base32, multihash, CID and dag-pb/UnixFS protobuf encoding."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offchain.storage import (
    CID,
    DAG_PB,
    RAW,
    InvalidBlock,
    InvalidCID,
    PBLink,
    PBNode,
    UnixFSData,
    UnixFSType,
)
from offchain.storage.multiformats import (
    IDENTITY,
    SHA2_256,
    VarintError,
    base58_decode,
    base58_encode,
    compute_multihash,
    decode_varint,
    encode_multihash,
    encode_varint,
    multibase_encode_base32,
)

HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
# Published CIDv1 raw-leaf CIDs (``ipfs add --cid-version=1``): "" and "hello world".
EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HELLO_WORLD_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


@pytest.mark.parametrize(("value", "encoded"), [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16384, "808001"),
    (2**63 - 1, "ffffffffffffffff7f"),
])
def test_varint_known_vectors(value: int, encoded: str) -> None:
    assert encode_varint(value).hex() == encoded
    assert decode_varint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)


@given(st.integers(min_value=0, max_value=2**64 - 1), st.binary(max_size=4))
def test_varint_roundtrip_with_trailing_bytes(value: int, trailer: bytes) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded + trailer) == (value, len(encoded))


@pytest.mark.parametrize(("encoded", "problem"), [
    ("", "truncated"), ("80", "truncated"), ("8000", "non-minimal"), ("ff" * 10 + "01", "longer"),
])
def test_varint_rejects_malformed(encoded: str, problem: str) -> None:
    with pytest.raises(VarintError, match=problem):
        decode_varint(bytes.fromhex(encoded))


def test_base58_known_vectors() -> None:
    assert base58_encode(b"hello world") == "StV1DL6CwTryKyV"
    assert base58_encode(b"\0\0\x01") == "112"
    assert base58_decode("112") == b"\0\0\x01"
    with pytest.raises(ValueError, match="invalid base58"):
        base58_decode("0OIl")


@given(st.binary(max_size=64))
def test_base58_roundtrip(data: bytes) -> None:
    assert base58_decode(base58_encode(data)) == data


def test_cidv0_parse_and_convert_to_v1() -> None:
    cid = CID.parse(HELLO_V0)
    assert (cid.version, cid.codec, cid.hash_code) == (0, DAG_PB, SHA2_256)
    assert str(cid) == HELLO_V0
    v1 = cid.to_v1()
    assert str(v1).startswith("bafybei")
    assert CID.parse(str(v1)).multihash == cid.multihash


def test_published_raw_leaf_cids() -> None:
    assert str(CID.for_block(b"", codec=RAW)) == EMPTY_RAW
    assert str(CID.for_block(b"hello world", codec=RAW)) == HELLO_WORLD_RAW


def test_other_multibases_name_the_same_cid() -> None:
    cid = CID.parse(HELLO_WORLD_RAW)
    binary = cid.to_bytes()
    assert CID.parse("B" + HELLO_WORLD_RAW[1:].upper()) == cid
    assert CID.parse("z" + base58_encode(binary)) == cid
    assert CID.parse("f" + binary.hex()) == cid
    assert CID.parse("F" + binary.hex().upper()) == cid
    assert CID.parse(binary) == cid


@given(version=st.sampled_from([0, 1]), codec=st.sampled_from([RAW, DAG_PB]),
       digest=st.binary(min_size=32, max_size=32))
def test_cid_string_and_binary_roundtrip(version: int, codec: int, digest: bytes) -> None:
    cid = CID(version, DAG_PB if version == 0 else codec, encode_multihash(SHA2_256, digest))
    assert CID.parse(str(cid)) == cid
    assert CID.from_bytes(cid.to_bytes()) == cid


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty"),
    ("Qm123", "46 characters"),
    ("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5O", "base58"),  # 'O' is not base58
    ("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5l", "base58"),
    ("bafy!!!", "multibase"),
    ("xabc", "unsupported multibase"),
    ("bafkreiHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU", "mixed case"),
    (" " + HELLO_V0, "invalid characters"),
    (HELLO_V0 + "\n", "invalid characters"),
    (multibase_encode_base32(bytes.fromhex("01551220") + bytes(10)), "carries 10 bytes"),
    ("f0155" + "12" + "20" + "00" * 31, "carries 31 bytes"),
    ("f0155" + "50" + "20" + "00" * 32, "unsupported multihash"),
    ("f02" + "55" + "12" + "20" + "00" * 32, "version 2"),
    ("b" + "a" * 300, "longer than"),
])
def test_malformed_cid_strings_raise_invalid_cid(text: str, problem: str) -> None:
    with pytest.raises(InvalidCID, match=problem):
        CID.parse(text)


def test_invalid_cid_is_a_value_error_and_rejects_non_strings() -> None:
    with pytest.raises(ValueError):
        CID.parse("nope")
    with pytest.raises(InvalidCID, match="string or bytes"):
        CID.parse(12345)  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_arbitrary_text_is_a_cid_or_invalid_cid(text: str) -> None:
    try:
        cid = CID.parse(text)
    except InvalidCID:
        return
    assert CID.parse(str(cid)) == cid


@given(st.binary(max_size=80))
def test_arbitrary_bytes_are_a_cid_or_invalid_cid(raw: bytes) -> None:
    with contextlib.suppress(InvalidCID):
        CID.from_bytes(raw)


def test_identity_cid_inlines_its_content() -> None:
    cid = CID(1, RAW, compute_multihash(b"tiny", IDENTITY))
    assert cid.digest == b"tiny"
    assert cid.matches(b"tiny") and not cid.matches(b"other")


def test_cid_verify_detects_mismatch() -> None:
    cid = CID.for_block(b"abc", codec=RAW)
    cid.verify(b"abc")
    assert cid.digest == hashlib.sha256(b"abc").digest()
    with pytest.raises(ValueError, match="does not match"):
        cid.verify(b"abd")


def test_hello_world_leaf_bytes_match_kubo_layout() -> None:
    unixfs = UnixFSData(UnixFSType.FILE, data=b"hello world\n", filesize=12)
    block = PBNode(data=unixfs.encode()).encode()
    assert block.hex() == "0a12" + "0802" + "120c" + b"hello world\n".hex() + "180c"
    assert str(CID.for_block(block, codec=DAG_PB, version=0)) == HELLO_V0


def test_internal_node_puts_links_first_with_empty_name() -> None:
    child = CID.parse(HELLO_V0)
    unixfs = UnixFSData(UnixFSType.FILE, filesize=24, blocksizes=(12, 12))
    node = PBNode(data=unixfs.encode(), links=(PBLink(child, "", 20), PBLink(child, "", 20)))
    block = node.encode()
    link = bytes.fromhex("0a22") + child.to_bytes() + bytes.fromhex("1200" "1814")
    assert block.startswith(bytes([0x12, len(link)]) + link)
    assert block.endswith(bytes.fromhex("0a08" "0802" "1818" "200c" "200c"))
    assert PBNode.decode(block) == node
    assert UnixFSData.decode(PBNode.decode(block).data or b"") == unixfs


links_strategy = st.lists(
    st.builds(PBLink,
              st.builds(lambda d: CID.for_block(d, codec=RAW), st.binary(max_size=8)),
              st.one_of(st.none(), st.text(max_size=8)),
              st.one_of(st.none(), st.integers(min_value=0, max_value=2**40))),
    max_size=4,
).map(tuple)


@given(data=st.one_of(st.none(), st.binary(max_size=64)), links=links_strategy)
def test_pbnode_roundtrip(data: bytes | None, links: tuple[PBLink, ...]) -> None:
    node = PBNode(data=data, links=links)
    assert PBNode.decode(node.encode()) == node


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_invalid_block(block: bytes) -> None:
    try:
        node = PBNode.decode(block)
        if node.data is not None:
            UnixFSData.decode(node.data)
    except InvalidBlock:
        pass


@pytest.mark.parametrize(("hex_block", "problem"), [
    ("0a05aabb", "past the end"),
    ("1a00", "unknown field 3"),
    ("0801", "wire type"),
    ("1200", "without a Hash"),
    ("0d00000000", "wire type 5"),
    ("0a00" "0a00", "more than one Data"),
])
def test_malformed_dag_pb_raises_invalid_block(hex_block: str, problem: str) -> None:
    with pytest.raises(InvalidBlock, match=problem):
        PBNode.decode(bytes.fromhex(hex_block))


def test_unixfs_requires_known_type() -> None:
    with pytest.raises(InvalidBlock, match="without a Type"):
        UnixFSData.decode(bytes.fromhex("1800"))
    with pytest.raises(InvalidBlock, match="unknown UnixFS type"):
        UnixFSData.decode(bytes.fromhex("0809"))
