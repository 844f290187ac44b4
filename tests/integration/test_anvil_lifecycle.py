"""The market on a real Anvil chain, deployed by the ape deploy script."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from offchain.chain.client import TransactionReverted
from offchain.chain.suite import ETHER, Role, TaskState
from tests.conftest import commitments
from tests.integration.conftest import WINDOW, advance_time

pytestmark = pytest.mark.integration

SUBMITTER, SOLVER, VERIFIER, STRANGER = 1, 2, 3, 4
SECRET = keccak(b"integration secret")


@pytest.fixture(scope="module")
def roles(as_role):
    market = {i: as_role(i) for i in (SUBMITTER, SOLVER, VERIFIER, STRANGER)}
    market[SOLVER].deposit(Role.SOLVER, 5 * ETHER)
    market[VERIFIER].deposit(Role.VERIFIER, 5 * ETHER)
    return market


def _create(market, *, expires_in=3_600, payment=ETHER):
    return market.create_task(spec_cid="QmSpec", commitments=commitments(20, 10), payment=payment, solver_stake=ETHER,
                              expires=market.now() + expires_in, train_window=600)


def _claim(solver, task_id):
    """Claim, then draw the entropy from the claim's block in the next one (Anvil mines per call)."""
    solver.transact("claim", task_id, keccak(SECRET))
    solver.transact("draw", task_id)


def test_full_lifecycle__create_claim_submit_accept_finalise_withdraw(roles, w3):
    submitter, solver, verifier = roles[SUBMITTER], roles[SOLVER], roles[VERIFIER]
    task_id = _create(submitter)
    _claim(solver, task_id)
    solver.transact("submit", task_id, keccak(b"root"), 3, "QmProof")
    submitted = solver.task(task_id).draw_block
    solver.transact("draw", task_id)
    [drawn] = solver.events("VerifierDrawn", submitted, task_id=task_id)
    block_hash = w3.eth.get_block(submitted)["hash"]
    expected = keccak(encode(["bytes32", "uint256", "bytes32"], [block_hash, task_id, keccak(b"root")]))
    assert drawn["args"]["seed"] == expected
    assert solver.task(task_id).verifier == drawn["args"]["verifier"] == verifier.account.address
    verifier.transact("accept", task_id)
    advance_time(w3, WINDOW + 1)
    solver.transact("finalise", task_id, SECRET)
    assert solver.task(task_id).state == TaskState.FINALISED

    balance = w3.eth.get_balance(solver.account.address)
    credit = solver.call("credits", solver.account.address)
    receipt = solver.transact("withdraw", solver.account.address)
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert credit > 0
    assert w3.eth.get_balance(solver.account.address) == balance + credit - fee
    assert solver.call("credits", solver.account.address) == 0
    assert w3.eth.get_balance(solver.deployment.market) >= solver.call("liabilities")


def test_cancel__refunds_submitter(roles):
    submitter = roles[SUBMITTER]
    task_id = _create(submitter)
    before = submitter.call("credits", submitter.account.address)
    submitter.transact("cancel", task_id)
    assert submitter.task(task_id).state == TaskState.CANCELLED
    assert submitter.call("credits", submitter.account.address) == before + ETHER


def test_expiry__solver_missed_deadline__anyone_slashes(roles, w3):
    submitter, solver, stranger = roles[SUBMITTER], roles[SOLVER], roles[STRANGER]
    task_id = _create(submitter)
    _claim(solver, task_id)
    bonded = solver.call("accounts", solver.account.address)[0]
    with pytest.raises(TransactionReverted, match="market: proof deadline not passed"):
        stranger.transact("expire", task_id)
    advance_time(w3, 601)
    stranger.transact("expire", task_id)
    assert solver.task(task_id).state == TaskState.OPEN
    assert solver.call("accounts", solver.account.address)[0] == bonded - ETHER


def test_revert__reports_reason_and_sends_nothing(roles, w3):
    stranger = roles[STRANGER]
    nonce = w3.eth.get_transaction_count(stranger.account.address)
    with pytest.raises(TransactionReverted, match="market: task not open"):
        stranger.transact("cancel", 10_000)
    assert w3.eth.get_transaction_count(stranger.account.address) == nonce
