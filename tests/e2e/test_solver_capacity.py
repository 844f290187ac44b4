"""A solver never claims a task it cannot train within the window (it would be slashed)."""

from __future__ import annotations

import pytest

from offchain.chain.suite import Role, TaskState
from offchain.workers.solver import Solver
from tests.e2e.harness import SOLVER, local_market, wait_for

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
