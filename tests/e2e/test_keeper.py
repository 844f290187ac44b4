"""The keeper on a real Anvil: nothing waits past a deadline for a human, and no move is sent twice."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import pytest
from eth_utils import keccak

from offchain.chain.suite import ETHER, Role, TaskState
from offchain.workers.keeper import DRAW_GRACE, Keeper
from offchain.workers.solver import Solver
from offchain.workers.verifier import Whistleblower
from tests.conftest import CHECKPOINTS, PROOF_CID, PROOF_ROOT, commitments
from tests.e2e.harness import (
    SOLVER,
    SUBMITTER,
    VERIFIER,
    WHISTLEBLOWER,
    dev_account,
    local_market,
    wait_for,
)

pytestmark = pytest.mark.e2e

SPEC_CID = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"  # never fetched: these tasks are played by hand
TIMEOUT = 1  # Arbitration.END_TIMEOUT


def _sender(market, event) -> str:
    return market.w3.eth.get_transaction(event["transactionHash"])["from"]


@pytest.fixture(autouse=True)
def _keeper_lines(caplog):
    caplog.set_level(logging.INFO, logger="dtm")


def _lines(caplog, *fragments: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if all(f in r.getMessage() for f in fragments)]


def test_silent_verifier__another_workers_keeper_expires_it__the_solver_is_paid_and_takes_the_next_task(
        tmp_path, caplog):
    with local_market(tmp_path) as m:
        reader = m.market(0)
        silent = m.market(VERIFIER)
        silent.deposit(Role.VERIFIER, 5 * ETHER)  # drawn for every proof, never runs a worker
        solver = m.start(Solver, SOLVER, Role.SOLVER, keeper_interval=None)  # leaves deadlines to others
        watcher = m.start(Whistleblower, WHISTLEBLOWER, Role.WHISTLEBLOWER, keeper_interval=1)
        first = m.post(steps=40, k=4, expires_in=30)
        second = m.post(steps=40, k=4)
        wait_for(lambda: reader.task(first).state == TaskState.FINALISED, 180, "the first task's finalisation")
        expired = reader.events("TaskExpired", m.deployment.block, task_id=first)
        assert expired and all(e["args"]["state"] == TaskState.SUBMITTED for e in expired)
        assert {e["args"]["culprit"] for e in expired} == {silent.account.address}
        assert {_sender(reader, e) for e in expired} == {watcher.address}
        [finalised] = reader.events("TaskFinalised", m.deployment.block, task_id=first)
        assert finalised["args"]["solver"] == solver.address and finalised["args"]["verifier_fee"] == 0
        claimed = wait_for(lambda: reader.events("TaskClaimed", m.deployment.block, task_id=second), 60,
                           "the next task's claim")
        assert claimed[0]["args"]["solver"] == solver.address
        assert claimed[0]["blockNumber"] > finalised["blockNumber"]  # one task at a time: it waited for the first
        terms = reader.terms(reader.task(first).terms_id)
        assert reader.call("accounts", silent.account.address)[0] == 5 * ETHER - len(expired) * terms.silence_slash
        # one line per keeper action, naming the task and the deadline that passed
        assert len(_lines(caplog, f"task {first}: its verify window closed", "expired it")) == len(expired)


def test_keeper__times_out_a_dispute_whose_side_to_move_stopped(tmp_path, caplog):
    with local_market(tmp_path) as m:
        reader, submitter, solver, verifier = (m.market(i) for i in (0, SUBMITTER, SOLVER, VERIFIER))
        solver.deposit(Role.SOLVER, 5 * ETHER)
        verifier.deposit(Role.VERIFIER, 5 * ETHER)
        task_id = submitter.create_task(spec_cid=SPEC_CID, commitments=commitments(), payment=ETHER,
                                        solver_stake=ETHER, expires=submitter.now() + 3_600, train_window=300)
        solver.transact("claim", task_id, keccak(b"secret"))
        solver.transact("draw", task_id)
        solver.transact("submit", task_id, PROOF_ROOT, CHECKPOINTS, PROOF_CID)
        solver.transact("draw", task_id)
        dispute_id = verifier.challenge(task_id, PROOF_ROOT, 0)
        # the solver never reveals its segment and the verifier never claims the timeout
        keeper = m.start(Whistleblower, WHISTLEBLOWER, Role.WHISTLEBLOWER, keeper_interval=1)
        events = reader.arbiter.events.DisputeEnded()
        [ended] = wait_for(lambda: events.get_logs(from_block=m.deployment.block,
                                                   argument_filters={"dispute_id": dispute_id}), 90, "the timeout")
        assert ended["args"]["reason"] == TIMEOUT and not ended["args"]["solver_won"]
        assert _sender(reader, ended) == keeper.address
        assert reader.task(task_id).state == TaskState.OPEN  # reopened for another solver
        assert tuple(reader.call("accounts", solver.account.address)[:2]) == (4 * ETHER, 0)
        wait_for(lambda: _lines(caplog, f"dispute {dispute_id} (task {task_id})", "solver's clock ran out"), 10,
                 "the keeper's line")
        [line] = _lines(caplog, f"dispute {dispute_id} (task {task_id})")
        assert "ended it by timeout" in line


def test_keeper_racing_other_senders__sends_each_move_once_and_takes_a_lost_race_in_its_stride(tmp_path, caplog):
    with local_market(tmp_path) as m:
        reader, submitter = m.market(0), m.market(SUBMITTER)
        expires = submitter.now() + 10
        tasks = [submitter.create_task(spec_cid=SPEC_CID, commitments=commitments(), payment=ETHER,
                                       solver_stake=ETHER, expires=expires, train_window=300) for _ in range(3)]
        wait_for(lambda: reader.w3.eth.get_block("latest")["timestamp"] > expires, 30, "the expiry")
        # mining paused: every move stays in flight until the test mines one block
        reader.w3.provider.make_request("evm_setIntervalMining", [0])
        reader.w3.provider.make_request("evm_setAutomine", [False])
        keeper, other = Keeper(m.market(7), name="keeper"), Keeper(m.market(8), name="other-keeper")
        assert sorted(move.target for move in keeper.run_pass()) == tasks
        # a human's expire of the first task, unsimulated and with a higher tip: it is mined first
        human = m.market(6)
        tx = human.contract.functions.expire(tasks[0]).build_transaction({
            "from": human.account.address, "gas": 300_000, "maxPriorityFeePerGas": 50 * 10**9,
            "maxFeePerGas": 100 * 10**9,
            "nonce": reader.w3.eth.get_transaction_count(human.account.address, "pending")})
        reader.w3.eth.send_raw_transaction(human.account.sign_transaction(tx).raw_transaction)
        assert other.run_pass() == []  # every move is already pending: its simulations revert
        lines = len(caplog.records)
        assert keeper.run_pass() == []  # its own moves are in flight: neither sent nor tried again
        assert len(caplog.records) == lines
        reader.w3.provider.make_request("evm_mine", [])
        keeper.tick()
        expired = reader.events("TaskExpired", m.deployment.block)
        assert sorted(e["args"]["task_id"] for e in expired) == tasks  # each once
        assert [_sender(reader, e) for e in expired if e["args"]["task_id"] == tasks[0]] == [human.account.address]
        assert reader.w3.eth.get_transaction_count(keeper.market.account.address) == len(tasks)
        assert reader.w3.eth.get_transaction_count(other.market.account.address) == 0
        assert keeper.run_pass() == [] and other.run_pass() == []  # nothing left overdue
        [lost] = _lines(caplog, f"task {tasks[0]}: its expiry closed", "reverted on chain: someone else moved first")
        for task_id in tasks[1:]:
            assert len(_lines(caplog, f"task {task_id}: its expiry closed", "expired it")) == 1
        for task_id in tasks:
            assert len(_lines(caplog, f"task {task_id}: its expiry closed", "not sent")) == 1  # the other keeper's


def test_dtm_keeper__a_process_expires_an_unclaimed_task_and_stops_on_sigterm(tmp_path):
    with local_market(tmp_path) as m:
        reader, submitter = m.market(0), m.market(SUBMITTER)
        env = {**os.environ, "DTM_RPC": m.anvil.url, "DTM_HOME": str(m.home),
               "DTM_DEPLOYMENTS_DIR": str(tmp_path / "deployments")}
        log_path = tmp_path / "keeper.log"
        with open(log_path, "w") as out:
            process = subprocess.Popen([sys.executable, "-m", "offchain.cli", "--dev-account", "9", "keeper",
                                        "--interval", "1"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            task_id = submitter.create_task(spec_cid=SPEC_CID, commitments=commitments(), payment=ETHER,
                                            solver_stake=ETHER, expires=submitter.now() + 5, train_window=300)
            wait_for(lambda: reader.task(task_id).state == TaskState.REFUNDED, 60, "the keeper's expire")
            [expired] = reader.events("TaskExpired", m.deployment.block, task_id=task_id)
            assert _sender(reader, expired) == dev_account(9).address
            wait_for(lambda: "expired it" in log_path.read_text(), 10, "the keeper's line")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        assert f"task {task_id}: its expiry closed" in log_path.read_text()


def test_keeper__draws_the_randomness_a_solver_left_undrawn(tmp_path, caplog):
    with local_market(tmp_path) as m:
        reader, submitter, solver = m.market(0), m.market(SUBMITTER), m.market(SOLVER)
        solver.deposit(Role.SOLVER, 5 * ETHER)
        task_id = submitter.create_task(spec_cid=SPEC_CID, commitments=commitments(), payment=ETHER,
                                        solver_stake=ETHER, expires=submitter.now() + 3_600, train_window=300)
        solver.transact("claim", task_id, keccak(b"secret"))  # and never draws
        committed = reader.task(task_id).draw_block
        keeper = Keeper(m.market(7), interval=1)
        assert keeper.run_pass() == []  # the solver's own draw, for now
        wait_for(lambda: reader.block_number() >= committed + DRAW_GRACE, 60, "the grace to pass")
        [move] = keeper.run_pass()
        left = f"task {task_id}: the draw committed at block {committed} was left"
        # the keeper says what it did once it has seen its move mined, on the tick after
        wait_for(lambda: (keeper.tick(), _lines(caplog, left))[1], 30, "the draw")
        [drawn] = reader.events("EntropyDrawn", m.deployment.block, task_id=task_id)
        assert _sender(reader, drawn) == keeper.market.account.address and drawn["args"]["entropy"] != bytes(32)
        assert move.function == "draw" and reader.task(task_id).state == TaskState.CLAIMED
        assert reader.task(task_id).draw_block == 0
        [line] = _lines(caplog, left)
        assert "drew its randomness" in line
