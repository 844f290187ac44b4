"""Streaming readers for HTTP request bodies: chunked transfer coding and multipart/form-data.

Uploads are streamed straight into the importer instead of being buffered, so adding a
large dataset costs one chunk of memory, not its full size. ``ipfshttpclient`` sends
chunked multipart bodies; browsers send multipart bodies with a Content-Length.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from .errors import ContentTooLarge

_READ_SIZE: Final = 64 * 1024
_MAX_HEADER_BYTES: Final = 16 * 1024
_PARAM_PATTERN: Final = re.compile(r';\s*([\w*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


class LineReadable(Protocol):
    """The raw socket file of a request: ``read`` and ``readline``."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


class MalformedRequest(ValueError):
    """The request body does not follow the framing it announced."""


class BodyReader:
    """A request body as a readable stream: Content-Length or chunked, with a size cap."""

    def __init__(self, stream: LineReadable, *, content_length: int | None, chunked: bool,
                 max_size: int | None) -> None:
        self._stream = stream
        self._chunked = chunked
        self._remaining = content_length or 0  # bytes left in the body or current chunk
        self._finished = not chunked and not content_length
        self._max_size = max_size
        self._consumed = 0

    def _next_chunk_size(self) -> int:
        line = self._stream.readline(1024)
        if not line.endswith(b"\n"):
            raise MalformedRequest("bad chunk header in chunked request body")
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise MalformedRequest("bad chunk size in chunked request body") from None

    def _skip_trailers(self) -> None:
        while self._stream.readline(1024) not in (b"\r\n", b"\n", b""):
            pass

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_READ_SIZE), b""))
        while not self._finished and self._remaining == 0:
            if not self._chunked:
                self._finished = True
                break
            if self._consumed and self._stream.readline(16) not in (b"\r\n", b"\n"):
                raise MalformedRequest("chunk data not followed by CRLF")
            self._remaining = self._next_chunk_size()
            if self._remaining == 0:
                self._skip_trailers()
                self._finished = True
        if self._finished or size == 0:
            return b""
        data = self._stream.read(min(size, self._remaining))
        if not data:
            raise MalformedRequest("request body ended early")
        self._remaining -= len(data)
        self._consumed += len(data)
        if self._max_size is not None and self._consumed > self._max_size:
            raise ContentTooLarge(f"request body exceeds {self._max_size} bytes")
        return data

    def drain(self) -> None:
        """Consume what is left so the connection can carry the next request."""
        while self.read(_READ_SIZE):
            pass


@dataclass(frozen=True)
class PartInfo:
    """Headers of one multipart part that the RPC handlers care about."""

    headers: dict[str, str]

    @property
    def filename(self) -> str | None:
        """The (URL-decoded, as ``ipfshttpclient`` URL-encodes it) file name, if any."""
        value = _header_params(self.headers.get("content-disposition", "")).get("filename")
        return urllib.parse.unquote(value) if value is not None else None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/octet-stream").split(";")[0].strip()

    @property
    def is_directory(self) -> bool:
        return self.content_type == "application/x-directory"


def _header_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, raw in _PARAM_PATTERN.findall(value):
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.lower()] = raw
    return params


def boundary_from_content_type(content_type: str) -> bytes:
    """Extract the multipart boundary, or raise :class:`MalformedRequest`."""
    if not content_type.lower().startswith("multipart/"):
        raise MalformedRequest(f"expected a multipart request body, got {content_type!r}")
    boundary = _header_params(content_type).get("boundary")
    if not boundary:
        raise MalformedRequest("multipart request without a boundary")
    return boundary.encode("latin-1")


class MultipartReader:
    """Iterate the parts of a multipart body; each part is read as a stream.

    Part data is released only once it is certain not to be the start of the next
    delimiter, so memory use is bounded by the read size plus the delimiter length.
    """

    def __init__(self, body: BodyReader, boundary: bytes) -> None:
        self._body = body
        self._delimiter = b"\r\n--" + boundary
        # A leading CRLF lets the first delimiter be matched like all the others.
        self._buffer = bytearray(b"\r\n")
        self._part_open = False

    def _fill(self) -> bool:
        data = self._body.read(_READ_SIZE)
        self._buffer += data
        return bool(data)

    def _need(self, count: int) -> None:
        while len(self._buffer) < count:
            if not self._fill():
                raise MalformedRequest("multipart body ended early")

    def read_part(self, size: int = -1, /) -> bytes:
        """Read from the current part; ``b""`` at its end."""
        if not self._part_open:
            return b""
        if size < 0:
            return b"".join(iter(lambda: self.read_part(_READ_SIZE), b""))
        while True:
            index = self._buffer.find(self._delimiter)
            if index == 0:
                self._part_open = False
                return b""
            if index > 0:
                take = min(size, index)
                break
            safe = len(self._buffer) - len(self._delimiter) + 1
            if safe >= size:
                take = size
                break
            if not self._fill():
                raise MalformedRequest("multipart part is not terminated by a boundary")
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        return data

    def _read_headers(self) -> dict[str, str]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _MAX_HEADER_BYTES:
                raise MalformedRequest("multipart part headers too long")
            if not self._fill():
                raise MalformedRequest("multipart body ended inside part headers")
        raw = bytes(self._buffer[:end]).decode("utf-8", "replace")
        del self._buffer[: end + 4]
        headers: dict[str, str] = {}
        for line in raw.split("\r\n"):
            name, separator, value = line.partition(":")
            if separator:
                headers[name.strip().lower()] = value.strip()
        return headers

    def parts(self) -> Iterator[PartInfo]:
        """Yield each part's headers; read its data with :meth:`read_part` before moving on."""
        # Skip the preamble up to the first delimiter.
        while (index := self._buffer.find(self._delimiter)) < 0:
            keep = len(self._delimiter) - 1
            if len(self._buffer) > keep:
                del self._buffer[:-keep]
            if not self._fill():
                raise MalformedRequest("multipart body has no boundary")
        del self._buffer[:index]
        while True:
            self._need(len(self._delimiter) + 2)
            del self._buffer[: len(self._delimiter)]
            if self._buffer.startswith(b"--"):
                return
            # Transport padding (spaces/tabs) may precede the CRLF after a delimiter.
            while self._buffer[0] in b" \t":
                del self._buffer[:1]
                self._need(2)
            if not self._buffer.startswith(b"\r\n"):
                raise MalformedRequest("malformed multipart delimiter line")
            del self._buffer[:2]
            headers = self._read_headers()
            self._part_open = True
            yield PartInfo(headers)
            while self.read_part(_READ_SIZE):  # skip whatever the consumer left unread
                pass


class PartStream:
    """Adapter giving the current part of a :class:`MultipartReader` a ``read`` method."""

    def __init__(self, reader: MultipartReader) -> None:
        self._reader = reader

    def read(self, size: int = -1, /) -> bytes:
        return self._reader.read_part(size)
