"""`dtm node up` as a user runs it: a real process, SIGTERM, restarts, ports in use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from offchain.chain.client import Market, connect
from offchain.chain.deployment import Deployment
from offchain.chain.suite import ETHER, Role, TaskState
from offchain.node import dev_account, free_port, port_in_use, wait_for
from tests.conftest import commitments

pytestmark = pytest.mark.e2e


class Node:
    def __init__(self, home: Path, deployments: Path, port: int, ipfs_port: int, *extra: str) -> None:
        env = {**os.environ, "DTM_DEPLOYMENTS_DIR": str(deployments)}
        self.web_port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "offchain.cli", "--home", str(home), "node", "up", "--port", str(port),
             "--ipfs-port", str(ipfs_port), "--web-port", str(self.web_port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []

    def wait_ready(self) -> str:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("web"):
                return "".join(self.lines)
        raise AssertionError("node did not come up:\n" + "".join(self.lines))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(30)


def test_node_up__sigterm_stops_anvil__restart_resumes_the_chain__fresh_starts_over(tmp_path):
    home, deployments = tmp_path / "home", tmp_path / "deployments"
    port, ipfs_port = free_port(), free_port()
    node = Node(home, deployments, port, ipfs_port)
    try:
        shown = node.wait_ready()
        assert "new chain (saved to" in shown
        url = f"http://127.0.0.1:{port}"
        deployment = Deployment.load(deployments / "ethereum-local.yaml")
        app = f"http://127.0.0.1:{node.web_port}/"
        assert shown.splitlines()[-1] == f"web     {app}  (the market's web app)"
        assert "<title>dtm" in requests.get(app).text
        [local] = requests.get(app + "config.json").json()["deployments"]
        assert (local["chain_id"], local["rpc_url"], local["contracts"]) == (31337, url, deployment.contracts)
        staker = Market(connect(url), deployment, dev_account(6))
        staker.deposit(Role.SOLVER, 3 * ETHER)
        time.sleep(6)  # the state is written every 5 s and on exit

        busy = subprocess.run([sys.executable, "-m", "offchain.cli", "--home", str(tmp_path / "other"), "node", "up",
                               "--port", str(port), "--ipfs-port", str(free_port())],
                              capture_output=True, text=True, timeout=60)
        assert busy.returncode != 0
        assert busy.stderr.strip().splitlines() == [f"Error: port {port} is in use (another node running?): "
                                                    "stop it or choose --port"]
    finally:
        assert node.stop() == 0
    wait_for(lambda: not port_in_use(port), timeout=10, what="anvil to exit with the node")

    again = Node(home, deployments, port, ipfs_port)
    try:
        assert "resumed from" in again.wait_ready()
        market = Market(connect(url), Deployment.load(deployments / "ethereum-local.yaml"), None)
        assert market.deployment.market == deployment.market
        assert market.call("accounts", dev_account(6).address)[0] == 3 * ETHER
    finally:
        again.stop()
    wait_for(lambda: not port_in_use(port), timeout=10, what="anvil to exit")

    fresh = Node(home, deployments, port, ipfs_port, "--fresh")
    try:
        assert "new chain" in fresh.wait_ready()
        market = Market(connect(url), Deployment.load(deployments / "ethereum-local.yaml"), None)
        assert market.call("accounts", dev_account(6).address)[0] == 0
    finally:
        fresh.stop()


def test_node_up__its_keeper_expires_a_task_nobody_claimed(tmp_path):
    port = free_port()
    node = Node(tmp_path / "home", tmp_path / "deployments", port, free_port())
    try:
        shown = node.wait_ready()
        assert f"\nkeeper  {dev_account(0).address} enforces every passed deadline\n" in shown
        deployment = Deployment.load(tmp_path / "deployments" / "ethereum-local.yaml")
        market = Market(connect(f"http://127.0.0.1:{port}"), deployment, dev_account(1))
        task_id = market.create_task(spec_cid="QmSpec", commitments=commitments(), payment=ETHER, solver_stake=ETHER,
                                     expires=market.now() + 3, train_window=300)
        wait_for(lambda: market.task(task_id).state == TaskState.REFUNDED, 60, "the node's keeper to expire it")
        [expired] = market.events("TaskExpired", market.deployment.block, task_id=task_id)
        assert market.w3.eth.get_transaction(expired["transactionHash"])["from"] == dev_account(0).address
    finally:
        assert node.stop() == 0
