"""Test helpers shared by the storage tests (imported by conftest and test modules)."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class KuboReference:
    """Asks a real Kubo (in a helper process) for the CID of a file."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._lock = threading.Lock()

    def cid_of_file(self, path: Path) -> str:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(f"{path}\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline().strip()
        assert answer and answer != "ERROR", f"Kubo could not add {path}"
        return answer

    def cid_of_bytes(self, data: bytes, directory: Path) -> str:
        path = directory / f"kubo-input-{len(data)}"
        path.write_bytes(data)
        try:
            return self.cid_of_file(path)
        finally:
            path.unlink()


Responder = Callable[[http.server.BaseHTTPRequestHandler], tuple[int, bytes]]


@dataclass
class FakeDaemon:
    """A loopback HTTP server answering RPC paths with scripted (possibly hostile) replies."""

    routes: dict[str, Responder]
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"
