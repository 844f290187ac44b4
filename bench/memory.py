"""Peak resident memory of one piece of work, in a process of its own (Linux)."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


@contextmanager
def peak_growth() -> Iterator[dict]:
    """Yields a dict whose ``"mib"`` is, on exit, the resident high-water mark above the resident
    set at entry (what setting up freed is first returned to the system, and the mark reset)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    out: dict = {}
    yield out
    out["mib"] = (_status_kib("VmHWM") - before) / 1024


def in_fresh_process(script: str, *args: str) -> dict:
    """Run ``script --one ARGS...`` and parse the JSON object on its last line of output."""
    done = subprocess.run([sys.executable, script, "--one", *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
