"""A worker's memory belongs to one chain: after a chain reset (same chain id, the market redeployed
at the same address, task ids restarting at 1) it starts clean and says so; after a node restart
that keeps the chain (`dtm node up`'s saved state) it remembers everything."""

from __future__ import annotations

import logging

from offchain.chain.client import Market, connect
from offchain.node import deploy, dev_account, free_port, start_anvil
from offchain.storage.store import LocalStore
from offchain.workers.base import Worker
from tests.conftest import TEST_CONTRACTS


def _chain(port, tmp_path, state=None):
    node = start_anvil(port, state=state)
    deployment = deploy(node.url, arbiter=TEST_CONTRACTS / "ManualArbiter.vy", window=60, forced_error_ppm=0,
                        deployments=tmp_path / "deployments")
    return node, deployment


def _worker(node, deployment, home, tmp_path):
    return Worker(market=Market(connect(node.url), deployment, dev_account(2)), store=LocalStore(tmp_path / "ipfs"),
                  home=home)


def test_chain_reset__worker_state_of_the_old_chain_is_set_aside_not_reused(tmp_path, caplog):
    port, home = free_port(), tmp_path / "home"
    node, deployment = _chain(port, tmp_path)
    try:
        worker = _worker(node, deployment, home, tmp_path)
        worker.track(4, secret="0x" + "11" * 32)
        first = worker.folder
    finally:
        node.stop()
    node, redeployed = _chain(port, tmp_path)  # a new chain: same id, same market address
    try:
        assert redeployed.market == deployment.market
        with caplog.at_level(logging.WARNING):
            worker = _worker(node, redeployed, home, tmp_path)
        assert worker.folder == first
        assert worker.state.task(4) is None and worker.state.tasks() == {}
        assert "chain reset detected" in caplog.text
        [aside] = [p for p in first.parent.iterdir() if ".reset-" in p.name]
        assert (aside / f"worker-{dev_account(2).address.lower()}.sqlite").exists()
    finally:
        node.stop()


def test_node_restart_with_saved_state__worker_remembers_its_tasks(tmp_path, caplog):
    port, home, state = free_port(), tmp_path / "home", tmp_path / "chain" / "state.json"
    node, deployment = _chain(port, tmp_path, state)
    try:
        _worker(node, deployment, home, tmp_path).track(1, secret="0x" + "22" * 32)
    finally:
        node.stop()
    node = start_anvil(port, state=state)  # the same chain, loaded back
    try:
        with caplog.at_level(logging.WARNING):
            worker = _worker(node, deployment, home, tmp_path)
        assert worker.state.task(1) == {"secret": "0x" + "22" * 32}
        assert "chain reset" not in caplog.text
    finally:
        node.stop()
