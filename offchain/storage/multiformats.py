"""Varints, multihashes, multibase and CIDs: just the parts IPFS file CIDs need.

Written out by hand so that CID parsing has no heavy dependencies and every malformed
input ends in :class:`InvalidCID` with a message that says what is wrong, instead of an
arbitrary exception from deep inside a third-party decoder.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .errors import IntegrityError, InvalidCID

# Multicodec codes used in this layer.
DAG_PB: Final = 0x70
RAW: Final = 0x55
DAG_CBOR: Final = 0x71
DAG_JSON: Final = 0x0129

CODEC_NAMES: Final[dict[int, str]] = {
    DAG_PB: "dag-pb",
    RAW: "raw",
    DAG_CBOR: "dag-cbor",
    DAG_JSON: "dag-json",
}
CODECS_BY_NAME: Final[dict[str, int]] = {name: code for code, name in CODEC_NAMES.items()}

# Multihash function codes.
IDENTITY: Final = 0x00
SHA2_256: Final = 0x12
SHA2_512: Final = 0x13
SHA3_512: Final = 0x14
SHA3_256: Final = 0x16
BLAKE2B_256: Final = 0xB220

_HASHERS: Final[dict[int, tuple[str, int, Callable[[bytes], bytes]]]] = {
    SHA2_256: ("sha2-256", 32, lambda data: hashlib.sha256(data).digest()),
    SHA2_512: ("sha2-512", 64, lambda data: hashlib.sha512(data).digest()),
    SHA3_256: ("sha3-256", 32, lambda data: hashlib.sha3_256(data).digest()),
    SHA3_512: ("sha3-512", 64, lambda data: hashlib.sha3_512(data).digest()),
    BLAKE2B_256: ("blake2b-256", 32, lambda data: hashlib.blake2b(data, digest_size=32).digest()),
}
HASH_CODES_BY_NAME: Final[dict[str, int]] = {
    name: code for code, (name, _, _) in _HASHERS.items()
} | {"identity": IDENTITY}

# Identity CIDs inline their content; cap it so a CID string cannot smuggle a big payload.
MAX_IDENTITY_DIGEST: Final = 128
# Longest CID string accepted; base58 decoding is quadratic, so bound it up front.
MAX_CID_STRING_LENGTH: Final = 256

_CIDV0_PREFIX: Final = bytes([SHA2_256, 32])
_BASE58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX: Final = {char: index for index, char in enumerate(_BASE58_ALPHABET)}


class VarintError(ValueError):
    """Raised by :func:`decode_varint`; callers translate it into their own error type."""


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, the varint of both protobuf and multiformats."""
    if value < 0:
        raise ValueError(f"varint cannot encode negative value {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0, *,
                  max_bytes: int = 10) -> tuple[int, int]:
    """Decode one varint at ``offset``; return ``(value, offset_after)``.

    Rejects truncated, over-long and non-minimal encodings, since two encodings of one
    number would give two different hashes for the same logical content.
    """
    value = 0
    shift = 0
    for index in range(max_bytes):
        position = offset + index
        if position >= len(data):
            raise VarintError("truncated varint")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise VarintError("non-minimal varint encoding")
            return value, position + 1
        shift += 7
    raise VarintError(f"varint longer than {max_bytes} bytes")


def base58_encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (multibase ``z`` and CIDv0)."""
    number = int.from_bytes(data, "big")
    chars: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(_BASE58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(chars))


def base58_decode(text: str) -> bytes:
    """Inverse of :func:`base58_encode`; raises ``ValueError`` on foreign characters."""
    number = 0
    for char in text:
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"invalid base58 character {char!r}")
        number = number * 58 + digit
    leading_zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * leading_zeros + body


def _base32_decode(text: str) -> bytes:
    padding = "=" * (-len(text) % 8)
    return base64.b32decode(text.upper() + padding)


def multibase_decode(text: str) -> bytes:
    """Decode a multibase string with one of the prefixes CIDs use in practice."""
    if not text:
        raise InvalidCID("empty multibase string")
    prefix, body = text[0], text[1:]
    try:
        if prefix == "b":
            if body != body.lower():
                raise ValueError("mixed case in base32 (prefix 'b' is lower case)")
            return _base32_decode(body)
        if prefix == "B":
            if body != body.upper():
                raise ValueError("mixed case in base32upper (prefix 'B')")
            return _base32_decode(body)
        if prefix == "z":
            return base58_decode(body)
        if prefix in ("f", "F"):
            return binascii.unhexlify(body)
    except (ValueError, binascii.Error) as error:
        raise InvalidCID(f"bad multibase encoding in {text!r}: {error}") from None
    raise InvalidCID(f"unsupported multibase prefix {prefix!r} in {text!r}")


def multibase_encode_base32(data: bytes) -> str:
    """Multibase ``b``: lower-case RFC 4648 base32 without padding (CIDv1 default)."""
    return "b" + base64.b32encode(data).decode("ascii").lower().rstrip("=")


def hash_function_name(code: int) -> str:
    """Human name of a multihash function code, for error messages."""
    if code == IDENTITY:
        return "identity"
    entry = _HASHERS.get(code)
    return entry[0] if entry else f"0x{code:x}"


def codec_name(code: int) -> str:
    """Human name of a multicodec code, for error messages."""
    return CODEC_NAMES.get(code, f"0x{code:x}")


def encode_multihash(code: int, digest: bytes) -> bytes:
    """Multihash = varint(function) || varint(length) || digest."""
    return encode_varint(code) + encode_varint(len(digest)) + digest


def decode_multihash(multihash: bytes) -> tuple[int, bytes]:
    """Split a multihash into ``(function code, digest)``, validating lengths."""
    try:
        code, offset = decode_varint(multihash, 0, max_bytes=9)
        length, offset = decode_varint(multihash, offset, max_bytes=9)
    except VarintError as error:
        raise InvalidCID(f"malformed multihash: {error}") from None
    digest = multihash[offset:]
    if len(digest) != length:
        raise InvalidCID(
            f"multihash declares a {length}-byte digest but carries {len(digest)} bytes"
        )
    if code == IDENTITY:
        if length > MAX_IDENTITY_DIGEST:
            raise InvalidCID(f"identity multihash longer than {MAX_IDENTITY_DIGEST} bytes")
        return code, digest
    entry = _HASHERS.get(code)
    if entry is None:
        raise InvalidCID(f"unsupported multihash function 0x{code:x}")
    name, expected_length, _ = entry
    if length != expected_length:
        raise InvalidCID(f"{name} digest must be {expected_length} bytes, not {length}")
    return code, digest


def compute_multihash(data: bytes, code: int = SHA2_256) -> bytes:
    """Hash ``data`` with the given multihash function and return the full multihash."""
    if code == IDENTITY:
        return encode_multihash(IDENTITY, data)
    entry = _HASHERS.get(code)
    if entry is None:
        raise InvalidCID(f"unsupported multihash function 0x{code:x}")
    return encode_multihash(code, entry[2](data))


@dataclass(frozen=True)
class CID:
    """A content identifier: version, content codec and the multihash of the block."""

    version: int
    codec: int
    multihash: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise InvalidCID(f"unsupported CID version {self.version}")
        decode_multihash(self.multihash)
        if self.version == 0 and (
            self.codec != DAG_PB or not self.multihash.startswith(_CIDV0_PREFIX)
        ):
            raise InvalidCID("CIDv0 must be a dag-pb block hashed with sha2-256")

    @classmethod
    def for_block(cls, block: bytes, *, codec: int, version: int = 1,
                  hash_code: int = SHA2_256) -> CID:
        """The CID of ``block`` under the given codec, version and hash function."""
        return cls(version, codec, compute_multihash(block, hash_code))

    @classmethod
    def parse(cls, value: str | bytes | CID) -> CID:
        """Parse a CID from its string or binary form; anything malformed is ``InvalidCID``."""
        if isinstance(value, CID):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls.from_bytes(bytes(value))
        if not isinstance(value, str):
            raise InvalidCID(f"a CID must be a string or bytes, not {type(value).__name__}")
        if not value:
            raise InvalidCID("empty CID string")
        if len(value) > MAX_CID_STRING_LENGTH:
            raise InvalidCID(f"CID string longer than {MAX_CID_STRING_LENGTH} characters")
        if not value.isascii() or not value.isprintable() or value.strip() != value:
            raise InvalidCID(f"CID string contains invalid characters: {value!r}")
        if value.startswith("Qm"):  # no multibase uses 'Q': this is meant as CIDv0
            if len(value) != 46:
                raise InvalidCID(
                    f"invalid CIDv0 {value!r}: expected 46 characters, not {len(value)}"
                )
            try:
                raw = base58_decode(value)
            except ValueError as error:
                raise InvalidCID(f"invalid CIDv0 {value!r}: {error}") from None
            return cls._from_v0_bytes(raw, value)
        return cls.from_bytes(multibase_decode(value), source=value)

    @classmethod
    def from_bytes(cls, raw: bytes, *, source: str | None = None) -> CID:
        """Parse a binary CID (CIDv0 is a bare sha2-256 multihash)."""
        shown = source if source is not None else raw.hex()
        if len(raw) == 34 and raw.startswith(_CIDV0_PREFIX):
            return cls._from_v0_bytes(raw, shown)
        try:
            version, offset = decode_varint(raw, 0, max_bytes=9)
            codec, offset = decode_varint(raw, offset, max_bytes=9)
        except VarintError as error:
            raise InvalidCID(f"invalid CID {shown!r}: {error}") from None
        if version != 1:
            raise InvalidCID(f"invalid CID {shown!r}: unsupported CID version {version}")
        try:
            return cls(1, codec, bytes(raw[offset:]))
        except InvalidCID as error:
            raise InvalidCID(f"invalid CID {shown!r}: {error}") from None

    @classmethod
    def _from_v0_bytes(cls, raw: bytes, shown: str) -> CID:
        if len(raw) != 34 or not raw.startswith(_CIDV0_PREFIX):
            raise InvalidCID(f"invalid CIDv0 {shown!r}: not a sha2-256 multihash")
        return cls(0, DAG_PB, raw)

    def to_bytes(self) -> bytes:
        """Binary form: bare multihash for v0, ``varint(1) varint(codec) multihash`` for v1."""
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return base58_encode(self.multihash)
        return multibase_encode_base32(self.to_bytes())

    def __repr__(self) -> str:
        return f"CID({str(self)!r})"

    def to_v1(self) -> CID:
        """The same block named as CIDv1 (used as a canonical key for pins)."""
        return CID(1, self.codec, self.multihash)

    @property
    def hash_code(self) -> int:
        """The multihash function code."""
        return decode_multihash(self.multihash)[0]

    @property
    def digest(self) -> bytes:
        """The raw digest (for identity CIDs: the inlined content)."""
        return decode_multihash(self.multihash)[1]

    def matches(self, block: bytes) -> bool:
        """True if ``block`` hashes to this CID's multihash."""
        return compute_multihash(block, self.hash_code) == self.multihash

    def verify(self, block: bytes) -> None:
        """Raise :class:`IntegrityError` unless ``block`` hashes to this CID."""
        if not self.matches(block):
            raise IntegrityError(
                f"block of {len(block)} bytes does not match CID {self} "
                f"({hash_function_name(self.hash_code)} mismatch)"
            )
