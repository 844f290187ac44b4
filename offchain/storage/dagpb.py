"""dag-pb and UnixFS protobuf encoding, written by hand.

Both schemas are tiny, and a CID is the hash of the exact bytes, so the encoder has to
reproduce Kubo's field order and presence rules byte for byte: links before data, every
link carrying ``Name`` (even empty) and ``Tsize``, UnixFS fields in field-number order,
``blocksizes`` unpacked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from .errors import InvalidBlock, InvalidCID
from .multiformats import CID, VarintError, decode_varint, encode_varint

_WIRE_VARINT = 0
_WIRE_LENGTH_DELIMITED = 2


def _field_key(number: int, wire_type: int) -> bytes:
    return encode_varint(number << 3 | wire_type)


def encode_varint_field(number: int, value: int) -> bytes:
    """A protobuf varint field (wire type 0)."""
    return _field_key(number, _WIRE_VARINT) + encode_varint(value)


def encode_bytes_field(number: int, value: bytes) -> bytes:
    """A protobuf length-delimited field (wire type 2)."""
    return _field_key(number, _WIRE_LENGTH_DELIMITED) + encode_varint(len(value)) + value


def iter_fields(message: bytes, what: str) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)`` for each field of a protobuf message.

    Only wire types 0 and 2 exist in dag-pb and UnixFS; anything else means the block is
    not what its codec claims, which is reported as :class:`InvalidBlock` naming ``what``.
    """
    offset = 0
    try:
        while offset < len(message):
            key, offset = decode_varint(message, offset)
            number, wire_type = key >> 3, key & 0x7
            if number == 0:
                raise InvalidBlock(f"{what}: field number 0")
            if wire_type == _WIRE_VARINT:
                value, offset = decode_varint(message, offset)
                yield number, wire_type, value
            elif wire_type == _WIRE_LENGTH_DELIMITED:
                length, offset = decode_varint(message, offset)
                end = offset + length
                if end > len(message):
                    raise InvalidBlock(f"{what}: field {number} runs past the end of the block")
                yield number, wire_type, bytes(message[offset:end])
                offset = end
            else:
                raise InvalidBlock(f"{what}: unsupported protobuf wire type {wire_type}")
    except VarintError as error:
        raise InvalidBlock(f"{what}: {error}") from None


def _expect(wire_type: int, expected: int, what: str, number: int) -> None:
    if wire_type != expected:
        raise InvalidBlock(f"{what}: field {number} has wire type {wire_type}, expected {expected}")


@dataclass(frozen=True)
class PBLink:
    """A dag-pb link: child CID, name (empty for file chunks) and cumulative size."""

    cid: CID
    name: str | None = ""
    tsize: int | None = None

    def encode(self) -> bytes:
        out = encode_bytes_field(1, self.cid.to_bytes())
        if self.name is not None:
            out += encode_bytes_field(2, self.name.encode("utf-8"))
        if self.tsize is not None:
            out += encode_varint_field(3, self.tsize)
        return out

    @classmethod
    def decode(cls, message: bytes) -> PBLink:
        cid: CID | None = None
        name: str | None = None
        tsize: int | None = None
        for number, wire_type, value in iter_fields(message, "dag-pb link"):
            if number == 1:
                _expect(wire_type, _WIRE_LENGTH_DELIMITED, "dag-pb link", number)
                assert isinstance(value, bytes)
                try:
                    cid = CID.from_bytes(value)
                except InvalidCID as error:
                    raise InvalidBlock(f"dag-pb link has an invalid CID: {error}") from None
            elif number == 2:
                _expect(wire_type, _WIRE_LENGTH_DELIMITED, "dag-pb link", number)
                assert isinstance(value, bytes)
                try:
                    name = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidBlock("dag-pb link name is not UTF-8") from None
            elif number == 3:
                _expect(wire_type, _WIRE_VARINT, "dag-pb link", number)
                assert isinstance(value, int)
                tsize = value
            else:
                raise InvalidBlock(f"dag-pb link has unknown field {number}")
        if cid is None:
            raise InvalidBlock("dag-pb link without a Hash")
        return cls(cid, name, tsize)


@dataclass(frozen=True)
class PBNode:
    """A dag-pb node: opaque ``data`` plus an ordered list of links."""

    data: bytes | None = None
    links: tuple[PBLink, ...] = ()

    def encode(self) -> bytes:
        """Canonical dag-pb bytes: links (field 2) first, then data (field 1)."""
        out = b"".join(encode_bytes_field(2, link.encode()) for link in self.links)
        if self.data is not None:
            out += encode_bytes_field(1, self.data)
        return out

    @classmethod
    def decode(cls, block: bytes) -> PBNode:
        data: bytes | None = None
        links: list[PBLink] = []
        for number, wire_type, value in iter_fields(block, "dag-pb node"):
            _expect(wire_type, _WIRE_LENGTH_DELIMITED, "dag-pb node", number)
            assert isinstance(value, bytes)
            if number == 1:
                if data is not None:
                    raise InvalidBlock("dag-pb node has more than one Data field")
                data = value
            elif number == 2:
                links.append(PBLink.decode(value))
            else:
                raise InvalidBlock(f"dag-pb node has unknown field {number}")
        return cls(data, tuple(links))


class UnixFSType(IntEnum):
    """``Data.DataType`` of the UnixFS v1 schema."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True)
class UnixFSData:
    """The UnixFS message carried in a dag-pb node's ``Data`` field (file-relevant fields)."""

    type: UnixFSType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default=())

    def encode(self) -> bytes:
        out = encode_varint_field(1, int(self.type))
        if self.data is not None:
            out += encode_bytes_field(2, self.data)
        if self.filesize is not None:
            out += encode_varint_field(3, self.filesize)
        out += b"".join(encode_varint_field(4, size) for size in self.blocksizes)
        return out

    @classmethod
    def decode(cls, message: bytes) -> UnixFSData:
        """Decode, ignoring metadata fields (hash type, fanout, mode, mtime) a reader can skip."""
        node_type: int | None = None
        data: bytes | None = None
        filesize: int | None = None
        blocksizes: list[int] = []
        for number, wire_type, value in iter_fields(message, "UnixFS data"):
            if number == 1:
                _expect(wire_type, _WIRE_VARINT, "UnixFS data", number)
                assert isinstance(value, int)
                node_type = value
            elif number == 2:
                _expect(wire_type, _WIRE_LENGTH_DELIMITED, "UnixFS data", number)
                assert isinstance(value, bytes)
                data = value
            elif number == 3:
                _expect(wire_type, _WIRE_VARINT, "UnixFS data", number)
                assert isinstance(value, int)
                filesize = value
            elif number == 4:
                if isinstance(value, int):
                    blocksizes.append(value)
                else:  # packed encoding, as some non-Go writers emit it
                    blocksizes.extend(_unpack_varints(value))
        if node_type is None:
            raise InvalidBlock("UnixFS data without a Type")
        try:
            unixfs_type = UnixFSType(node_type)
        except ValueError:
            raise InvalidBlock(f"unknown UnixFS type {node_type}") from None
        return cls(unixfs_type, data, filesize, tuple(blocksizes))


def _unpack_varints(packed: bytes) -> Iterator[int]:
    offset = 0
    try:
        while offset < len(packed):
            value, offset = decode_varint(packed, offset)
            yield value
    except VarintError as error:
        raise InvalidBlock(f"UnixFS blocksizes: {error}") from None
