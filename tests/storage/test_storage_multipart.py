"""Streaming request-body parsing: chunked transfer coding and multipart/form-data."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.storage.errors import ContentTooLarge
from offchain.storage.multipart import (
    BodyReader,
    MalformedRequest,
    MultipartReader,
    PartStream,
    boundary_from_content_type,
)

BOUNDARY = b"xYzZY"


class TricklingStream(io.BytesIO):
    """Returns short reads, like a socket does, to exercise boundary handling."""

    def __init__(self, data: bytes, seed: int) -> None:
        super().__init__(data)
        self._random = random.Random(seed)

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return super().read()
        return super().read(min(size, self._random.randint(1, 7)))


def multipart_body(parts: list[tuple[str, bytes]]) -> bytes:
    out = b"preamble to ignore\r\n"
    for name, data in parts:
        out += b"--" + BOUNDARY + b"\r\n"
        out += f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'.encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\nepilogue"


def chunked(data: bytes, sizes: list[int]) -> bytes:
    out, offset = b"", 0
    for size in [*sizes, len(data)]:
        piece = data[offset:offset + size]
        offset += len(piece)
        if piece:
            out += b"%x;ext=1\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\nTrailer: x\r\n\r\n"


def read_parts(body: BodyReader) -> list[tuple[str | None, bytes]]:
    reader = MultipartReader(body, BOUNDARY)
    return [(part.filename, PartStream(reader).read()) for part in reader.parts()]


def _boundary_free(data: bytes) -> bool:
    """A sender picks a boundary whose delimiter (CRLF "--" boundary) never occurs in a part
    (RFC 2046 §5.1.1); the part's own leading CRLF counts, as it ends the part's headers."""
    delimiter = b"\r\n--" + BOUNDARY
    return (b"\r\n" + data + delimiter).find(delimiter) == len(data) + 2


tricky_bytes = st.lists(st.sampled_from([b"\r\n", b"--", BOUNDARY, b"-", b"\r", b"x", b"\0"]),
                        max_size=30).map(b"".join).filter(_boundary_free)


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.tuples(st.text("abc xyz.", min_size=1, max_size=8), tricky_bytes),
                      min_size=1, max_size=3),
       seed=st.integers(0, 1000), use_chunked=st.booleans(),
       chunk_sizes=st.lists(st.integers(1, 40), max_size=5))
def test_multipart_roundtrip(parts: list[tuple[str, bytes]], seed: int, use_chunked: bool,
                             chunk_sizes: list[int]) -> None:
    raw = multipart_body(parts)
    wire = chunked(raw, chunk_sizes) if use_chunked else raw
    body = BodyReader(TricklingStream(wire, seed), content_length=None if use_chunked else len(raw),
                      chunked=use_chunked, max_size=None)
    assert read_parts(body) == parts


def test_filename_is_url_decoded_and_boundary_parsed() -> None:
    assert boundary_from_content_type('multipart/form-data; boundary="a b"') == b"a b"
    with pytest.raises(MalformedRequest):
        boundary_from_content_type("application/json")
    raw = multipart_body([("hello%20world.txt", b"hi")])
    body = BodyReader(io.BytesIO(raw), content_length=len(raw), chunked=False, max_size=None)
    assert read_parts(body) == [("hello world.txt", b"hi")]


@pytest.mark.parametrize("wire", [
    b"--" + BOUNDARY + b"\r\n\r\nunterminated",
    b"no boundary at all",
    b"--" + BOUNDARY + b"\r\nHeader-without-end",
])
def test_malformed_multipart(wire: bytes) -> None:
    body = BodyReader(io.BytesIO(wire), content_length=len(wire), chunked=False, max_size=None)
    with pytest.raises(MalformedRequest):
        read_parts(body)


def test_body_limits_and_framing_errors() -> None:
    raw = multipart_body([("big", bytes(5000))])
    body = BodyReader(io.BytesIO(raw), content_length=len(raw), chunked=False, max_size=1000)
    with pytest.raises(ContentTooLarge):
        read_parts(body)
    short = BodyReader(io.BytesIO(b"abc"), content_length=10, chunked=False, max_size=None)
    with pytest.raises(MalformedRequest, match="ended early"):
        short.read()
    bad_chunk = BodyReader(io.BytesIO(b"zz\r\n"), content_length=None, chunked=True,
                           max_size=None)
    with pytest.raises(MalformedRequest, match="chunk size"):
        bad_chunk.read()
