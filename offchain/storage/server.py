"""A Kubo-compatible RPC endpoint over a local :class:`Blockstore`.

Implements the part of Kubo's ``/api/v0`` that workers and the browser dApp use, with
Kubo's argument names, response shapes and JSON errors, so the same client code works
against this server and against a real Kubo daemon. It never reaches the network: a
missing block is an immediate error, like ``ipfs --offline``.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from .blockstore import DEFAULT_MAX_CAT_SIZE, MAX_BLOCK_SIZE, Blockstore
from .errors import ContentNotFound, ContentTooLarge, InvalidCID, StorageError
from .importer import CHUNK_SIZE, ImportProfile
from .multiformats import CID, CODECS_BY_NAME, DAG_PB, HASH_CODES_BY_NAME
from .multipart import (
    BodyReader,
    MalformedRequest,
    MultipartReader,
    PartStream,
    boundary_from_content_type,
)

logger = logging.getLogger(__name__)

KUBO_COMPAT_VERSION: Final = "0.22.0"
"""Kubo release whose RPC semantics this subset follows (reported by ``/version``)."""

API_PREFIX: Final = "/api/v0"
_TRUE_VALUES: Final = {"", "1", "t", "true"}
_FALSE_VALUES: Final = {"0", "f", "false"}


class ApiError(Exception):
    """An error answered as Kubo's ``{"Message", "Code", "Type"}`` JSON body."""

    def __init__(self, message: str, *, status: int = 500, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def _argument_error(message: str) -> ApiError:
    """Kubo answers bad or missing arguments with HTTP 400 and error code 1."""
    return ApiError(message, status=400, code=1)


class Query:
    """The query string of one request, with Kubo's conventions for flags and ``arg``."""

    def __init__(self, query: str) -> None:
        self._values = urllib.parse.parse_qs(query, keep_blank_values=True)

    def args(self) -> list[str]:
        values = self._values.get("arg", [])
        if not values:
            raise _argument_error('argument "ipfs-path" is required')
        return values

    def text(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in _TRUE_VALUES:
            return True
        if value.lower() in _FALSE_VALUES:
            return False
        raise _argument_error(f"option {name!r}: {value!r} is not a boolean")

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.text(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise _argument_error(f"option {name!r}: {value!r} is not an integer") from None


def parse_content_path(value: str) -> CID:
    """Accept ``CID``, ``/ipfs/CID`` or ``ipfs://CID``; paths inside a DAG are not supported."""
    for prefix in ("/ipfs/", "ipfs://"):
        if value.startswith(prefix):
            value = value[len(prefix):]
            break
    cid_text, _, rest = value.partition("/")
    if rest.strip("/"):
        raise InvalidCID(f"paths inside a DAG are not supported: {value!r}")
    return CID.parse(cid_text)


def _import_profile(query: Query) -> ImportProfile:
    """Translate ``ipfs add`` options; refuse those that would change the CID silently."""
    cid_version = query.integer("cid-version", 0)
    if cid_version not in (0, 1):
        raise _argument_error(f"unsupported cid-version {cid_version}")
    raw_leaves_given = query.text("raw-leaves") is not None
    raw_leaves = query.flag("raw-leaves", False) if raw_leaves_given else None
    chunker = query.text("chunker")
    if chunker not in (None, "", f"size-{CHUNK_SIZE}"):
        raise _argument_error(f"only the size-{CHUNK_SIZE} chunker is supported, not {chunker!r}")
    hash_name = query.text("hash")
    if hash_name not in (None, "", "sha2-256"):
        raise _argument_error(f"only sha2-256 is supported for add, not {hash_name!r}")
    for unsupported in ("trickle", "wrap-with-directory", "inline", "nocopy"):
        if query.flag(unsupported, False):
            raise _argument_error(f"option {unsupported!r} is not supported by this server")
    return ImportProfile(cid_version=cid_version, raw_leaves=raw_leaves)


class StorageHTTPServer(ThreadingHTTPServer):
    """HTTP server carrying the block store and CORS/size settings for its handlers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Blockstore, *,
                 cors_origins: Sequence[str], max_upload_size: int | None,
                 max_cat_size: int) -> None:
        super().__init__(address, RpcHandler)
        self.store = store
        self.cors_origins = tuple(cors_origins)
        self.max_upload_size = max_upload_size
        self.max_cat_size = max_cat_size

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-response are routine; log them quietly."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            logger.debug("client %s went away: %s", client_address, error)
        else:
            logger.exception("error while serving %s", client_address)


class RpcHandler(BaseHTTPRequestHandler):
    """Routes ``POST /api/v0/<command>`` to the store, Kubo style."""

    server: StorageHTTPServer
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers (~40 ms a request on Linux loopback)
    disable_nagle_algorithm = True
    server_version = f"dtm-storage/{KUBO_COMPAT_VERSION}"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    # -- plumbing -------------------------------------------------------------------

    def _allowed_origin(self) -> str | None:
        """The value for Access-Control-Allow-Origin, or None if the origin is refused."""
        origin = self.headers.get("Origin")
        if "*" in self.server.cors_origins:
            return "*"
        if origin is not None and origin in self.server.cors_origins:
            return origin
        return None

    def _send_cors_headers(self) -> None:
        allowed = self._allowed_origin()
        if allowed is None:
            return
        self.send_header("Access-Control-Allow-Origin", allowed)
        if allowed != "*":
            self.send_header("Vary", "Origin")
        self.send_header("Access-Control-Expose-Headers",
                         "X-Stream-Output, X-Chunked-Output, X-Content-Length")

    def _send_bytes(self, status: int, body: bytes, content_type: str,
                    extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self._send_cors_headers()
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, payload: dict[str, Any]) -> None:
        self._send_bytes(200, json.dumps(payload).encode() + b"\n", "application/json")

    def _send_json_lines(self, payloads: Iterable[dict[str, Any]]) -> None:
        body = b"".join(json.dumps(payload).encode() + b"\n" for payload in payloads)
        self._send_bytes(200, body, "application/json", [("X-Chunked-Output", "1")])

    def _send_error(self, error: ApiError) -> None:
        """Send the error and close: the request body may be half read, and announcing
        the close keeps clients from reusing a connection that is about to go away."""
        self.close_connection = True
        body = json.dumps({"Message": error.message, "Code": error.code, "Type": "error"})
        self._send_bytes(error.status, body.encode() + b"\n", "application/json",
                         [("Connection", "close")])

    def _send_stream(self, first: bytes | None, rest: Iterator[bytes], *, skip: int,
                     limit: int | None) -> None:
        """Send file data with chunked coding. A failure mid-stream drops the connection
        without the final chunk, so the client sees a broken transfer, never a short file."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Stream-Output", "1")
        self._send_cors_headers()
        self.end_headers()
        pieces = rest if first is None else _prepend(first, rest)
        try:
            for piece in _slice_stream(pieces, skip=skip, limit=limit):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        except (StorageError, OSError) as error:
            logger.warning("aborting stream for %s: %s", self.path, error)
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")

    def _body(self) -> BodyReader:
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header is not None else None
        except ValueError:
            raise _argument_error("invalid Content-Length") from None
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        return BodyReader(self.rfile, content_length=length, chunked=chunked,
                          max_size=self.server.max_upload_size)

    def _multipart(self, body: BodyReader) -> MultipartReader:
        boundary = boundary_from_content_type(self.headers.get("Content-Type", ""))
        return MultipartReader(body, boundary)

    # -- HTTP verbs -----------------------------------------------------------------

    def do_OPTIONS(self) -> None:
        """CORS preflight for browser clients."""
        self.send_response(200 if self._allowed_origin() else 403)
        self.send_header("Content-Length", "0")
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers",
                         self.headers.get("Access-Control-Request-Headers", "Content-Type"))
        self.send_header("Access-Control-Max-Age", "600")
        self._send_cors_headers()
        self.end_headers()

    def _method_not_allowed(self) -> None:
        self._send_error(ApiError(f"method {self.command} not allowed; use POST", status=405))

    do_GET = do_PUT = do_DELETE = do_PATCH = _method_not_allowed  # noqa: N815

    def do_HEAD(self) -> None:
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        body = self._body()
        try:
            if self.headers.get("Origin") is not None and self._allowed_origin() is None:
                raise ApiError("origin not allowed", status=403)
            route = _ROUTES.get(url.path.rstrip("/"))
            if route is None:
                raise ApiError(f"unknown command {url.path!r}", status=404)
            route(self, Query(url.query), body)
            body.drain()
        except ApiError as error:
            self._send_error(error)
        except InvalidCID as error:
            self._send_error(ApiError(f"invalid path: {error}"))
        except ContentNotFound as error:
            self._send_error(ApiError(f"block was not found locally (offline): {error}"))
        except ContentTooLarge as error:
            self._send_error(ApiError(str(error), status=413))
        except StorageError as error:
            self._send_error(ApiError(str(error)))
        except MalformedRequest as error:
            self._send_error(_argument_error(str(error)))

    # -- commands -------------------------------------------------------------------

    def _add(self, query: Query, body: BodyReader) -> None:
        profile = _import_profile(query)
        only_hash = query.flag("only-hash", False)
        pin = query.flag("pin", True)
        reader = self._multipart(body)
        results: list[dict[str, Any]] = []
        for part in reader.parts():
            if part.is_directory:
                raise _argument_error("adding directories is not supported by this server")
            result = self.server.store.add_stream(PartStream(reader), profile=profile,
                                                  pin=pin, only_hash=only_hash)
            cid = str(result.cid)
            results.append({"Name": part.filename or cid, "Hash": cid,
                            "Size": str(result.dag_size)})
        if not results:
            raise _argument_error("file argument 'path' is required")
        self._send_json_lines(results)

    def _cat(self, query: Query, _body: BodyReader) -> None:
        path = query.args()[0]
        offset = query.integer("offset", 0) or 0
        length = query.integer("length")
        if offset < 0 or (length is not None and length < 0):
            raise _argument_error("offset and length must not be negative")
        chunks = self.server.store.iter_cat(parse_content_path(path),
                                            max_size=self.server.max_cat_size)
        # Pull the root block before answering, so a bad or missing CID is a clean error.
        first = next(chunks, None)
        self._send_stream(first, chunks, skip=offset, limit=length)

    def _block_get(self, query: Query, _body: BodyReader) -> None:
        block = self.server.store.get_block(parse_content_path(query.args()[0]))
        self._send_bytes(200, block, "application/octet-stream")

    def _block_put(self, query: Query, body: BodyReader) -> None:
        codec, version = _block_codec(query)
        hash_name = query.text("mhtype") or "sha2-256"
        hash_code = HASH_CODES_BY_NAME.get(hash_name)
        if hash_code is None:
            raise _argument_error(f"unsupported mhtype {hash_name!r}")
        pin = query.flag("pin", False)
        reader = self._multipart(body)
        results: list[dict[str, Any]] = []
        for _part in reader.parts():
            data = PartStream(reader).read(MAX_BLOCK_SIZE + 1)
            if len(data) > MAX_BLOCK_SIZE:
                raise ContentTooLarge(f"block exceeds {MAX_BLOCK_SIZE} bytes")
            cid = CID.for_block(data, codec=codec, version=version, hash_code=hash_code)
            self.server.store.put_block(data, cid)
            if pin:
                self.server.store.pin(cid)
            results.append({"Key": str(cid), "Size": len(data)})
        if not results:
            raise _argument_error("file argument 'data' is required")
        self._send_json_lines(results)

    def _pin_add(self, query: Query, _body: BodyReader) -> None:
        if not query.flag("recursive", True):
            raise _argument_error("only recursive pins are supported")
        pinned = [self.server.store.pin(parse_content_path(arg)) for arg in query.args()]
        self._send_json({"Pins": pinned})

    def _version(self, _query: Query, _body: BodyReader) -> None:
        self._send_json({
            "Version": KUBO_COMPAT_VERSION,
            "Commit": "dtm-storage",
            "Repo": "dtm-blockstore-1",
            "System": f"{platform.machine()}/{platform.system().lower()}",
            "Golang": "none (Python implementation)",
        })


def _block_codec(query: Query) -> tuple[int, int]:
    """Kubo 0.22 ``block put``: ``cid-codec`` (default raw, CIDv1) or legacy ``format``."""
    legacy_format = query.text("format")
    codec_name = query.text("cid-codec")
    if legacy_format:
        if codec_name not in (None, "", "raw"):
            raise _argument_error('cannot use "format" and a custom "cid-codec" together')
        if legacy_format in ("v0", "protobuf"):
            return DAG_PB, 0
        codec_name = {"cbor": "dag-cbor"}.get(legacy_format, legacy_format)
    codec = CODECS_BY_NAME.get(codec_name or "raw")
    if codec is None:
        raise _argument_error(f"unsupported cid-codec {codec_name!r}")
    return codec, 1


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _slice_stream(pieces: Iterable[bytes], *, skip: int, limit: int | None) -> Iterator[bytes]:
    """Apply ``cat``'s offset/length to a stream of pieces."""
    for piece in pieces:
        if skip >= len(piece):
            skip -= len(piece)
            continue
        piece, skip = piece[skip:], 0
        if limit is not None:
            piece = piece[:limit]
            limit -= len(piece)
        if piece:
            yield piece
        if limit == 0:
            return


_ROUTES: Final[dict[str, Callable[[RpcHandler, Query, BodyReader], None]]] = {
    f"{API_PREFIX}/add": RpcHandler._add,
    f"{API_PREFIX}/cat": RpcHandler._cat,
    f"{API_PREFIX}/block/get": RpcHandler._block_get,
    f"{API_PREFIX}/block/put": RpcHandler._block_put,
    f"{API_PREFIX}/pin/add": RpcHandler._pin_add,
    f"{API_PREFIX}/version": RpcHandler._version,
}


class StorageServer:
    """A running RPC server (background thread) with its address; a context manager."""

    def __init__(self, httpd: StorageHTTPServer) -> None:
        self.httpd = httpd
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> Blockstore:
        return self.httpd.store

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:5001`` (what ``IPFS_API`` takes)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def multiaddr(self) -> str:
        """The API address as a multiaddr, the form ``ipfshttpclient`` expects."""
        family = "ip6" if ":" in self.host else "ip4"
        return f"/{family}/{self.host}/tcp/{self.port}/http"

    def start(self) -> StorageServer:
        """Serve in a daemon thread and return immediately."""
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        name=f"storage-rpc-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> StorageServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def create_server(store_dir: str, host: str = "127.0.0.1", port: int = 5001, *,
                  cors_origins: Sequence[str] = ("*",), max_upload_size: int | None = None,
                  max_cat_size: int = DEFAULT_MAX_CAT_SIZE,
                  fsync: bool = True) -> StorageServer:
    """Bind an RPC server over the block store in ``store_dir`` without serving yet.

    ``port=0`` picks a free port. ``cors_origins`` lists the browser origins allowed to
    call the API (``"*"`` for any).
    """
    store = Blockstore(store_dir, fsync=fsync)
    httpd = StorageHTTPServer((host, port), store, cors_origins=cors_origins,
                              max_upload_size=max_upload_size, max_cat_size=max_cat_size)
    return StorageServer(httpd)


def serve(store_dir: str, host: str = "127.0.0.1", port: int = 5001,
          **options: Any) -> StorageServer:
    """Start an RPC server in a background thread; ``close()`` it when done."""
    return create_server(store_dir, host, port, **options).start()


def run_server(store_dir: str, host: str = "127.0.0.1", port: int = 5001,
               **options: Any) -> None:
    """Serve in the foreground until interrupted (the ``dtm ipfs serve`` entry point)."""
    server = create_server(store_dir, host, port, **options)
    print(f"storage RPC listening on {server.url} (IPFS_API={server.multiaddr}), "
          f"blocks in {server.store.root}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
