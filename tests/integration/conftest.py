"""A real Anvil, started once per session, with the suite deployed by `scripts/deploy.py`."""

from __future__ import annotations

import pytest
from web3 import Web3

from offchain.chain.client import Market, connect
from offchain.node import deploy, dev_account, start_anvil
from tests.conftest import TEST_CONTRACTS

WINDOW = 60


@pytest.fixture(scope="session")
def anvil():
    node = start_anvil()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def deployment(anvil, tmp_path_factory):
    return deploy(anvil.url, arbiter=TEST_CONTRACTS / "ManualArbiter.vy", window=WINDOW, forced_error_ppm=0,
                  deployments=tmp_path_factory.mktemp("deployments"))


@pytest.fixture(scope="session")
def w3(anvil) -> Web3:
    return connect(anvil.url)


@pytest.fixture(scope="session")
def as_role(w3, deployment):
    """`as_role(i)`: the market seen by Anvil's i-th funded account."""
    return lambda index: Market(w3, deployment, dev_account(index))


def advance_time(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])
