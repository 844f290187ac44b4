"""Bad input on a live market: clear errors, nothing lost, workers keep running."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from offchain.chain.suite import ETHER, Role, TaskState
from offchain.workers.solver import Solver
from offchain.workers.verifier import Verifier
from tests.conftest import commitments
from tests.e2e.harness import SOLVER, SUBMITTER, VERIFIER, local_market, wait_for

pytestmark = pytest.mark.e2e

MISSING_CID = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"  # `hello world\n`, never added here


def test_task_with_unfetchable_spec__is_not_claimed_and_worker_keeps_going__malformed_content_rejected(tmp_path):
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER)
        submitter = m.market(SUBMITTER)
        bad = submitter.create_task(spec_cid=MISSING_CID, commitments=commitments(), payment=ETHER,
                                    solver_stake=ETHER, expires=submitter.now() + 3_600, train_window=300)
        wait_for(lambda: (solver.state.task(bad) or {}).get("skip", "").startswith("its content is not reachable"),
                 30, "the solver to skip the task for now")
        m.store.add_bytes(b"hello world\n")  # the content appears, and is no task spec
        wait_for(lambda: (solver.state.task(bad) or {}).get("outcome", "").startswith("rejected"), 60,
                 "the solver to reject the task for good")
        assert submitter.task(bad).state == TaskState.OPEN
        assert submitter.call("accounts", solver.address)[1] == 0  # nothing locked
        good = m.post()  # the same worker still serves the next task
        wait_for(lambda: submitter.task(good).state == TaskState.SUBMITTED, 60, "the next task's proof")


def test_proof_with_missing_checkpoints__is_challenged(tmp_path):
    with local_market(tmp_path) as m:
        verifier = m.start(Verifier, VERIFIER, Role.VERIFIER)
        solver = m.market(SOLVER)
        solver.deposit(Role.SOLVER, 5 * ETHER)
        task_id = m.post()
        solver.transact("claim", task_id, keccak(b"secret"))
        solver.transact("draw", task_id)
        # a proof root and CID whose content was never published
        solver.transact("submit", task_id, keccak(b"unpublished"), 51, MISSING_CID)
        solver.transact("draw", task_id)
        wait_for(lambda: solver.task(task_id).state == TaskState.DISPUTED, 60, "a challenge")
        [verdict] = verifier.state.task(task_id)["verdicts"].values()
        assert not verdict["accept"] and "unavailable" in verdict["reason"]
