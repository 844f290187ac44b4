"""Workers never start work they cannot finish in time, and prepare what they can ahead of it."""

from __future__ import annotations

import pytest

from offchain.chain.suite import Role, TaskState
from offchain.workers.solver import Solver
from tests.e2e.harness import SOLVER, VERIFIER, local_market, wait_for

pytestmark = pytest.mark.e2e


def test_solver__skips_a_task_it_cannot_train_in_its_window_and_claims_one_it_can(tmp_path):
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER)
        too_long = m.post(steps=1_000_000, k=250, train_window=60)
        wait_for(lambda: (solver.state.task(too_long) or {}).get("outcome"), what="the solver's decision")
        outcome = solver.state.task(too_long)["outcome"]
        assert outcome.startswith("skipped: training needs ~") and "the window is 60 s" in outcome
        assert m.market(0).task(too_long).state == TaskState.OPEN
        feasible = m.post(steps=40, k=4, train_window=60)
        wait_for(lambda: m.market(0).task(feasible).state != TaskState.OPEN, what="the feasible task's claim")
        assert m.market(0).task(feasible).solver == solver.address


def test_verifier__profiles_a_task_when_it_is_posted_not_when_drawn(tmp_path):
    from offchain.workers.verifier import Verifier

    with local_market(tmp_path) as m:
        verifier = m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = m.post(steps=40, k=4)
        task = m.market(0).task(task_id)
        key = "profile:" + ":".join(root.hex() for root in _roots(m, task_id))
        profile = wait_for(lambda: verifier.state.get(key), what="the verifier's profile of the new task")
        assert profile["threshold"] > 0 and profile["step_seconds"] > 0
        assert task.state == TaskState.OPEN and verifier.state.task(task_id) is None  # not drawn, not tracked


def _roots(m, task_id):
    from offchain.workers.artifacts import fetch_task

    created = m.market(0).events("TaskCreated", m.deployment.block, task_id=task_id)[-1]["args"]
    task = fetch_task(m.store, created["spec_cid"], created["spec_hash"]).task
    return task.graph_root, task.dataset_root, task.weights_root
