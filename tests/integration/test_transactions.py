"""Sending moves and following the chain on a real Anvil (`Market.transact`, `TxPolicy`,
`NonceManager`, `Worker.poll_once`): concurrent moves of one account, a transaction that is not
mined, confirmations, a reorganisation that drops a mined move, and one that replaces blocks whose
events a worker read. The chain here is this module's own: the tests switch its mining off and
revert it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from offchain.chain.client import ChainError, Market, NonceManager, TxPolicy, connect
from offchain.chain.suite import Role
from offchain.node import deploy, dev_account, start_anvil
from offchain.storage.store import LocalStore
from offchain.workers.base import Worker
from tests.conftest import TEST_CONTRACTS

AMOUNT = 10**15


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    node = start_anvil()
    deployment = deploy(node.url, arbiter=TEST_CONTRACTS / "ManualArbiter.vy", window=60, forced_error_ppm=0,
                        deployments=tmp_path_factory.mktemp("deployments"))
    yield connect(node.url), deployment
    node.stop()


def _rpc(w3, method, *params):
    response = w3.provider.make_request(method, list(params))
    assert "error" not in response, response
    return response["result"]


def _bonded(market: Market) -> int:
    return market.call("accounts", market.account.address)[0]


class _Move(threading.Thread):
    """`market.deposit` on another thread: the test moves the chain meanwhile."""

    def __init__(self, market: Market) -> None:
        super().__init__(daemon=True)
        self.market, self.receipt, self.error = market, None, None

    def run(self) -> None:
        try:
            self.receipt = self.market.deposit(Role.SOLVER, AMOUNT)
        except Exception as exc:  # reported by the test
            self.error = exc


def _wait(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_nonces__concurrent_moves_of_one_account_each_get_their_own(chain):
    w3, deployment = chain
    account = dev_account(3)
    markets = [Market(w3, deployment, account) for _ in range(2)]  # two clients of one account
    before = w3.eth.get_transaction_count(account.address)
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda i: markets[i % 2].deposit(Role.SOLVER, AMOUNT), range(8)))
    assert all(r["status"] == 1 for r in receipts)
    assert w3.eth.get_transaction_count(account.address) == before + 8
    assert len({w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts}) == 8
    assert _bonded(markets[0]) == 8 * AMOUNT


def test_fees__a_move_not_mined_is_replaced_with_higher_fees_and_lands_once(chain):
    w3, deployment = chain
    market = Market(w3, deployment, dev_account(4), TxPolicy(bump_after=0.3, max_bumps=2))
    before = w3.eth.get_transaction_count(market.account.address)
    first_fee = market._fees()["maxFeePerGas"]
    _rpc(w3, "evm_setAutomine", False)
    try:
        move = _Move(market)
        move.start()
        time.sleep(1.5)  # two bumps
        assert move.is_alive()
    finally:
        _rpc(w3, "evm_setAutomine", True)
        _rpc(w3, "evm_mine")
    move.join(30)
    assert move.error is None and move.receipt["status"] == 1
    mined = w3.eth.get_transaction(move.receipt["transactionHash"])
    assert mined["maxFeePerGas"] >= first_fee * 125 * 125 // 100 // 100
    assert w3.eth.get_transaction_count(market.account.address) == before + 1
    assert _bonded(market) == AMOUNT


def test_fees__a_move_sent_without_waiting_gets_raised_fees_as_its_receipt_is_polled(chain):
    """`send` + `receipt` (the keeper's way): a poll after `bump_after` without a receipt re-sends the
    move with raised fees under the same nonce; the receipt of whichever version lands is returned
    for the first hash, and the move executes once."""
    w3, deployment = chain
    market = Market(w3, deployment, dev_account(7), TxPolicy(bump_after=0.3, max_bumps=2))
    before, bonded = w3.eth.get_transaction_count(market.account.address), _bonded(market)
    first_fee = market._fees()["maxFeePerGas"]
    _rpc(w3, "evm_setAutomine", False)
    try:
        tx_hash = market.send("deposit", int(Role.SOLVER), value=AMOUNT)
        for _ in range(3):  # three polls, two of them late enough to bump (at most max_bumps)
            time.sleep(0.35)
            assert market.receipt(tx_hash) is None
    finally:
        _rpc(w3, "evm_setAutomine", True)
        _rpc(w3, "evm_mine")
    receipt = market.receipt(tx_hash)
    assert receipt["status"] == 1 and receipt["transactionHash"] != tx_hash  # the last version landed
    assert w3.eth.get_transaction(receipt["transactionHash"])["maxFeePerGas"] >= first_fee * 125 * 125 // 100 // 100
    assert w3.eth.get_transaction_count(market.account.address) == before + 1
    assert _bonded(market) == bonded + AMOUNT
    assert market._unmined == {}  # the nonce is free again


def test_confirmations__a_move_is_done_only_with_enough_blocks_on_top(chain):
    w3, deployment = chain
    market = Market(w3, deployment, dev_account(5), TxPolicy(confirmations=3))
    move = _Move(market)
    move.start()
    _wait(lambda: _bonded(market) == AMOUNT)  # mined at once (automine) ...
    time.sleep(0.5)
    assert move.is_alive()                     # ... but not yet done
    _rpc(w3, "evm_mine")
    time.sleep(0.3)
    assert move.is_alive()
    _rpc(w3, "evm_mine")
    move.join(10)
    assert not move.is_alive() and move.error is None
    assert w3.eth.block_number - move.receipt["blockNumber"] + 1 >= 3


def test_reorg__a_dropped_move_is_broadcast_again_once_and_executes_once(chain):
    w3, deployment = chain
    market = Market(w3, deployment, dev_account(6), TxPolicy(confirmations=2, bump_after=60))
    before = w3.eth.get_transaction_count(market.account.address)
    snapshot = _rpc(w3, "evm_snapshot")
    move = _Move(market)
    move.start()
    _wait(lambda: _bonded(market) == AMOUNT)
    _rpc(w3, "evm_revert", snapshot)           # the block holding the move is gone
    assert _bonded(market) in (0, AMOUNT)
    _wait(lambda: _bonded(market) == AMOUNT)   # the client broadcast it again; automine mined it
    _rpc(w3, "evm_mine")
    move.join(10)
    assert not move.is_alive() and move.error is None and move.receipt["status"] == 1
    assert w3.eth.get_transaction_count(market.account.address) == before + 1
    assert _bonded(market) == AMOUNT


def test_policy__nonsense_settings_are_refused_in_one_line(monkeypatch):
    from offchain.chain.client import ChainError

    with pytest.raises(ChainError, match="confirmations >= 1"):
        TxPolicy(confirmations=0)
    monkeypatch.setenv("DTM_CONFIRMATIONS", "two")
    with pytest.raises(ChainError, match="DTM_CONFIRMATIONS"):
        TxPolicy.from_env()


class _DepositWatcher(Worker):
    """A worker that records the deposits it reads from the chain's events."""

    role = "watcher"
    watches = ("Deposited",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: list[int] = []

    def on_event(self, name, args) -> None:
        self.seen.append(args["amount"])


def test_reorg__a_worker_re_reads_events_from_before_the_fork(chain, tmp_path):
    w3, deployment = chain
    depositor = Market(w3, deployment, dev_account(7))
    watcher = _DepositWatcher(market=Market(w3, deployment, dev_account(8)), store=LocalStore(tmp_path / "ipfs"),
                              home=tmp_path / "home")
    snapshot = _rpc(w3, "evm_snapshot")
    depositor.deposit(Role.SOLVER, AMOUNT)
    watcher.poll_once()
    assert watcher.seen[-1] == AMOUNT
    _rpc(w3, "evm_revert", snapshot)              # that block is gone ...
    depositor.deposit(Role.SOLVER, 3 * AMOUNT)     # ... and another one holds this deposit
    watcher.poll_once()
    assert watcher.seen[-1] == 3 * AMOUNT


def test_reorg__a_done_move_dropped_under_a_waiting_one__both_are_sent_again_and_land_once(chain):
    """A reorganisation drops two moves of one account: the first already counted done (its sender
    returned), the second still waiting for its confirmations. Its nonce waits behind the first's,
    which nobody would send again: the sender broadcasts the first move's own transaction again,
    and both land, each once."""
    w3, deployment = chain
    account = dev_account(9)
    done = Market(w3, deployment, account)
    waiting = Market(w3, deployment, account, TxPolicy(confirmations=3, bump_after=60, timeout=30))
    before = w3.eth.get_transaction_count(account.address)
    snapshot = _rpc(w3, "evm_snapshot")
    done.deposit(Role.SOLVER, AMOUNT)         # mined (automine) and counted done
    move = _Move(waiting)
    move.start()
    _wait(lambda: _bonded(done) == 2 * AMOUNT)
    _rpc(w3, "evm_revert", snapshot)          # both are gone
    _wait(lambda: _bonded(done) == 2 * AMOUNT)  # both sent again and mined
    _rpc(w3, "evm_mine")
    _rpc(w3, "evm_mine")
    move.join(20)
    assert not move.is_alive() and move.error is None and move.receipt["status"] == 1
    assert w3.eth.get_transaction_count(account.address) == before + 2


def test_send__a_move_the_node_lost_is_broadcast_again_and_its_nonce_does_not_wedge_the_next(chain):
    """A node restart empties its pool: a move sent without waiting (a keeper's) is broadcast again
    by `receipt`, so neither it nor the moves after it wait forever."""
    w3, deployment = chain
    account = dev_account(1)
    market = Market(w3, deployment, account)
    before = w3.eth.get_transaction_count(account.address)
    _rpc(w3, "evm_setAutomine", False)
    try:
        tx_hash = market.send("deposit", int(Role.SOLVER), value=AMOUNT)
        _rpc(w3, "anvil_dropTransaction", "0x" + tx_hash.hex())  # lost with the node's pool
        time.sleep(1.1)  # a move is looked for a second after its broadcast
        assert market.receipt(tx_hash) is None and market._known(tx_hash)  # ... and broadcast again
        _rpc(w3, "evm_mine")
        assert market.receipt(tx_hash)["status"] == 1
    finally:
        _rpc(w3, "evm_setAutomine", True)
    market.deposit(Role.SOLVER, AMOUNT)  # the next move takes the next nonce and lands
    assert w3.eth.get_transaction_count(account.address) == before + 2
    assert _bonded(market) == 2 * AMOUNT


def test_events__a_range_past_the_head_is_a_chain_error(chain):
    """A reorganisation can shorten the chain between a worker reading the head and asking for the
    logs up to it: the node's refusal is a `ChainError` (one line in a worker's log), not a crash."""
    w3, deployment = chain
    market = Market(w3, deployment)
    with pytest.raises(ChainError, match="Deposited logs"):
        market.events("Deposited", w3.eth.block_number + 3, w3.eth.block_number + 5)


def test_nonces__a_chain_started_afresh_with_the_same_id_inherits_no_move_in_flight(tmp_path):
    """A move in flight when its node went away (a local chain stopped) must not wedge the same
    account's next move on a new chain of the same id."""
    markets = []
    for run in range(2):
        node = start_anvil()
        try:
            deployment = deploy(node.url, arbiter=TEST_CONTRACTS / "ManualArbiter.vy", window=60,
                                forced_error_ppm=0, deployments=tmp_path / str(run))
            market = Market(connect(node.url), deployment, dev_account(7), TxPolicy(timeout=20))
            assert market.deposit(Role.SOLVER, AMOUNT)["status"] == 1
            markets.append(market)
            if run == 0:  # the node goes away with a later move of this account still in flight
                NonceManager.of(market._chain, market.account.address).in_flight.add(5)
                time.sleep(1.1)  # the next chain's genesis is of another second
        finally:
            node.stop()
    assert markets[0]._chain[0] == markets[1]._chain[0] and markets[0]._chain != markets[1]._chain


def test_nonces__a_test_market_loaded_from_the_same_snapshot_inherits_no_move_in_flight(tmp_path):
    """Every test market is loaded from one snapshot (`tests.chains.deployed`), so each has the last
    one's genesis: `local_market` forgets the process's nonces of that chain, or a move left in
    flight by a worker of the last test would hold back the same account's next move forever."""
    from tests.e2e.harness import local_market

    chains = []
    for run in range(2):
        with local_market(tmp_path / str(run)) as m:
            market = Market(connect(m.anvil.url), m.deployment, dev_account(8), TxPolicy(timeout=20))
            assert market.deposit(Role.SOLVER, AMOUNT)["status"] == 1
            chains.append(market._chain)
            NonceManager.of(market._chain, market.account.address).in_flight.add(5)
    assert chains[0] == chains[1]  # the same genesis: only the forgetting sets the second one free
