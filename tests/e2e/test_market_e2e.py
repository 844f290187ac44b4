"""End to end on a real Anvil: workers talking only through the chain and the content store."""

from __future__ import annotations

import pytest

from offchain.chain.suite import Role, TaskState
from offchain.workers.solver import Solver
from offchain.workers.submitter import fetch_result
from offchain.workers.verifier import Verifier, Whistleblower
from tests.e2e.harness import SOLVER, VERIFIER, WHISTLEBLOWER, local_market, wait_for

pytestmark = pytest.mark.e2e


def _state(market, task_id):
    return market.task(task_id).state


def test_honest_task__finalises_pays_and_delivers_weights(tmp_path):
    with local_market(tmp_path) as m:
        m.start(Solver, SOLVER, Role.SOLVER)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        m.start(Whistleblower, WHISTLEBLOWER, Role.WHISTLEBLOWER)
        task_id = m.post()
        reader = m.market(0)
        wait_for(lambda: _state(reader, task_id) == TaskState.FINALISED, what="finalisation")
        [paid] = reader.events("TaskFinalised", m.deployment.block, task_id=task_id)
        assert paid["args"]["solver_payment"] > 0 and paid["args"]["verifier_fee"] > 0
        # the solver and verifier workers withdraw what they earned
        wait_for(lambda: reader.call("credits", m.market(SOLVER).account.address) == 0, what="solver withdrawal")
        result = fetch_result(reader, m.store, task_id)
        assert result.accuracy > 0.8
        assert not reader.events("Challenged", m.deployment.block, task_id=task_id)


@pytest.mark.parametrize("cheat", ["skip", "fabricate", "wrong-data"])
def test_cheating_solver__is_challenged_and_disputed(tmp_path, cheat):
    with local_market(tmp_path) as m:
        m.start(Solver, SOLVER, Role.SOLVER, cheat=cheat)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = m.post()
        reader = m.market(0)
        wait_for(lambda: _state(reader, task_id) == TaskState.DISPUTED, what="a challenge")
        [challenge] = reader.events("Challenged", m.deployment.block, task_id=task_id)
        assert challenge["args"]["challenger"] == m.market(VERIFIER).account.address


def test_lazy_verifier__accepts_a_cheat__whistleblower_challenges(tmp_path):
    with local_market(tmp_path) as m:
        m.start(Solver, SOLVER, Role.SOLVER, cheat="skip")
        m.start(Verifier, VERIFIER, Role.VERIFIER, lazy=True)
        m.start(Whistleblower, WHISTLEBLOWER, Role.WHISTLEBLOWER)
        task_id = m.post()
        reader = m.market(0)
        wait_for(lambda: _state(reader, task_id) == TaskState.DISPUTED, what="the whistle")
        assert reader.events("ProofAccepted", m.deployment.block, task_id=task_id)
        [challenge] = reader.events("Challenged", m.deployment.block, task_id=task_id)
        assert challenge["args"]["challenger"] == m.market(WHISTLEBLOWER).account.address
        # the whistleblower's bond is locked behind the dispute
        assert reader.call("accounts", challenge["args"]["challenger"])[1] > 0


def test_forced_error__caught_by_verifier_paid_from_jackpot_then_genuine_proof_paid(tmp_path):
    with local_market(tmp_path, forced_error_ppm=1_000_000) as m:
        m.start(Solver, SOLVER, Role.SOLVER)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = m.post()
        reader = m.market(0)
        wait_for(lambda: _state(reader, task_id) == TaskState.FINALISED, timeout=120, what="finalisation")
        [revealed] = reader.events("ForcedErrorRevealed", m.deployment.block, task_id=task_id)
        verifier = m.market(VERIFIER).account.address
        assert revealed["args"]["exposed_by"] == verifier
        paid = reader.contract.events.JackpotPaid().get_logs(from_block=m.deployment.block)
        assert [e["args"]["winner"] for e in paid] == [verifier] and paid[0]["args"]["amount"] > 0
        rounds = [e["args"]["round"] for e in reader.events("ProofSubmitted", m.deployment.block, task_id=task_id)]
        assert rounds == [0, 1]
        assert fetch_result(reader, m.store, task_id).accuracy > 0.8
