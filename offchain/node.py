"""A local node: Anvil from `node_modules`, the suite deployed by `scripts/deploy.py`.

Anvil's well-known development mnemonic funds ten accounts; `dev_account(i)`
gives their keys so a local market runs without any keystore.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from filelock import FileLock

from offchain.chain.client import connect
from offchain.chain.deployment import Deployment, deployment_path
from offchain.chain.suite import ROOT
from offchain.log import get_logger

log = get_logger(__name__)

DEV_MNEMONIC = "test test test test test test test test test test test junk"
# the dispute game bound to local deployments
LOCAL_DEPLOYMENT = ("ethereum", "local")
DEFAULT_ARBITER = ROOT / "contracts" / "Arbitration.vy"

Account.enable_unaudited_hdwallet_features()


class NodeError(RuntimeError):
    """Anvil or the deployment could not be brought up."""


def wait_for(condition, timeout: float = 90.0, what: str = "a condition", *, interval: float = 0.5):
    """Poll `condition` until it returns something truthy; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def dev_account(index: int) -> LocalAccount:
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def tool_path() -> str:
    """PATH with the project's virtualenv and npm binaries first."""
    extra = [str(ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
    return os.pathsep.join([*extra, os.environ.get("PATH", "")])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Anvil:
    process: subprocess.Popen
    url: str

    def stop(self) -> None:
        """Stop the node and wait until it has exited (its state written, its port free)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def port_in_use(port: int) -> bool:
    """Whether a server could not listen on `port` (connections closing in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def anvil_binary() -> str | None:
    """Anvil itself: npm's launcher script forwards a stop signal and exits at once, before Anvil
    has written its state and freed its port, so the platform's binary is run directly."""
    for native in sorted((ROOT / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")):
        if os.access(native, os.X_OK):
            return str(native)
    return shutil.which("anvil", path=tool_path())


def start_anvil(port: int | None = None, *, state: Path | None = None) -> Anvil:
    """Anvil on `port` (a free one by default); with `state`, the chain is loaded from that file
    when it exists and written back every few seconds and on exit, so it survives restarts."""
    binary = anvil_binary()
    if binary is None:
        raise NodeError("anvil not found: run `npm install` (package.json pins @foundry-rs/anvil)")
    port = port or free_port()
    if port_in_use(port):
        raise NodeError(f"port {port} is in use (another node running?): stop it or choose another port")
    args = [binary, "--port", str(port), "--silent", "--mnemonic", DEV_MNEMONIC]
    if state is not None:
        state.parent.mkdir(parents=True, exist_ok=True)
        args += ["--dump-state", str(state), "--state-interval", "5"]
        if state.exists():
            args += ["--load-state", str(state)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        if process.poll() is not None:
            raise NodeError(f"anvil exited: {process.stderr.read().decode()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise NodeError(f"anvil did not listen on port {port}")
    connect(url)
    return Anvil(process, url)


def mine_every(rpc_url: str, seconds: int) -> None:
    """Switch Anvil from mining on demand to a block every `seconds`, so block
    time keeps up with the wall clock while nothing is sent (deadlines need it)."""
    connect(rpc_url).provider.make_request("evm_setIntervalMining", [seconds])


def deploy(rpc_url: str, *, arbiter: Path = DEFAULT_ARBITER, window: int, clock: int | None = None,
           forced_error_ppm: int | None = None, deployments: Path | None = None) -> Deployment:
    """Run `ape run deploy` against `rpc_url` with Anvil's first account."""
    env = {**os.environ, "PATH": tool_path(), "APE_FOUNDRY_HOST": rpc_url}
    if deployments is not None:
        env["DTM_DEPLOYMENTS_DIR"] = str(deployments)
    args = ["ape", "run", "deploy", "--network", "ethereum:local:foundry", "--account", "TEST::0",
            "--arbiter", str(arbiter), "--window", str(window)]
    if forced_error_ppm is not None:
        args += ["--forced-error-ppm", str(forced_error_ppm)]
    if clock is not None:
        args += ["--clock", str(clock), "--extension", str(max(clock // 4, 1))]
    # one compile at a time: concurrent deploys from one checkout share ape's build folder
    with FileLock(ROOT / ".build.lock"):
        result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise NodeError(f"deploy failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return Deployment.load(deployment_path(*LOCAL_DEPLOYMENT, deployments))
