"""Workers never start work they cannot finish in time, and prepare what they can ahead of it."""

from __future__ import annotations

import logging
import time

import pytest

from offchain.chain.suite import ETHER, Role, TaskState
from offchain.storage import LocalStore
from offchain.workers import solver as solver_module
from offchain.workers.solver import Solver
from tests.e2e.harness import SOLVER, VERIFIER, local_market, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _worker_lines(caplog):
    caplog.set_level(logging.INFO, logger="dtm")


def _skips(caplog, task_id: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "dtm.solver" and r.getMessage().startswith(f"task {task_id}: not claiming")]


def test_solver__skips_a_task_it_cannot_train_in_its_window_and_claims_one_it_can(tmp_path, caplog):
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER)
        too_long = m.post(steps=1_000_000, k=250, train_window=60)
        wait_for(lambda: (solver.state.task(too_long) or {}).get("outcome"), what="the solver's decision")
        outcome = solver.state.task(too_long)["outcome"]
        assert outcome.startswith("skipped: window too short: training needs ~") and "the window is 60 s" in outcome
        assert m.market(0).task(too_long).state == TaskState.OPEN
        feasible = m.post(steps=40, k=4, train_window=60)
        wait_for(lambda: m.market(0).task(feasible).state != TaskState.OPEN, what="the feasible task's claim")
        assert m.market(0).task(feasible).solver == solver.address
        [line] = _skips(caplog, too_long)  # once, however many rounds went by
        assert "window too short" in line


def test_solver__without_free_stake_skips_once_with_the_reason_and_claims_when_stake_allows(tmp_path, caplog):
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER)  # 5 ETH staked
        task_id = m.post(steps=40, k=4, solver_stake=6 * ETHER)
        wait_for(lambda: _skips(caplog, task_id), 30, "the solver's skip")
        time.sleep(3)  # ten rounds of the worker's loop
        [line] = _skips(caplog, task_id)
        assert "no free stake: 5 ETH free, the task needs 6 ETH (will look again)" in line
        assert m.market(0).task(task_id).state == TaskState.OPEN
        m.market(SOLVER).deposit(Role.SOLVER, ETHER)
        wait_for(lambda: m.market(0).task(task_id).solver == solver.address, 60, "the claim once stake allows")


def test_solver__retries_a_task_whose_content_is_not_reachable_yet_and_claims_it_once_it_is(
        tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(solver_module, "CONTENT_RETRY", 1.0)
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER)
        elsewhere = LocalStore(tmp_path / "elsewhere")  # published where the solver cannot read it yet
        task_id = m.post(steps=40, k=4, store=elsewhere)
        wait_for(lambda: _skips(caplog, task_id), 30, "the solver's skip")
        time.sleep(3)  # a few retries
        [line] = _skips(caplog, task_id)
        assert "its content is not reachable yet (ContentNotFound)" in line and "(will look again)" in line
        assert not solver.state.task(task_id).get("done")
        m.publish(m.store, steps=40, k=4, hidden=32)  # now it reaches the solver's store
        wait_for(lambda: m.market(0).task(task_id).solver == solver.address, 60, "the claim once it is reachable")


def test_verifier__profiles_a_graph_when_its_first_task_is_posted_and_shares_it(tmp_path, caplog):
    """Profiled at posting, not when drawn, and once per graph: a second task of the same graph
    (other steps, other data rows drawn) reuses the profile."""
    from offchain.workers.verifier import Verifier

    with local_market(tmp_path) as m:
        verifier = m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = m.post(steps=40, k=4)
        task = m.market(0).task(task_id)
        graph_root = _roots(m, task_id)[0]
        key = f"profile:{graph_root.hex()}:{verifier.threads}"
        profile = wait_for(lambda: verifier.state.get(key), what="the verifier's profile of the new task")
        assert profile["threshold"] > 0 and profile["step_seconds"] > 0
        assert task.state == TaskState.OPEN and verifier.state.task(task_id) is None  # not drawn, not tracked
        second = m.post(steps=80, k=8)
        assert _roots(m, second)[0] == graph_root
        wait_for(lambda: _lines(caplog, f"task {second}: ready to verify"), 30, "the verifier's look at the second task")
        assert len(_lines(caplog, "profiled distance threshold")) == 1


def _lines(caplog, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dtm.verifier" and r.getMessage().startswith(start)]


def _roots(m, task_id):
    from offchain.workers.artifacts import fetch_task

    created = m.market(0).events("TaskCreated", m.deployment.block, task_id=task_id)[-1]["args"]
    task = fetch_task(m.store, created["spec_cid"], created["spec_hash"]).task
    return task.graph_root, task.dataset_root, task.weights_root


def test_solver__the_element_cheat_leaves_tasks_without_its_op_to_others(tmp_path, caplog):
    """It corrupts the last node of its op in a program: an MLP program has no attention softmax,
    so it does not claim it."""
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER, cheat="element", corrupt_op="safe_softmax")
        task_id = m.post(steps=40, k=4)
        wait_for(lambda: (solver.state.task(task_id) or {}).get("outcome"), what="the solver's decision")
        assert solver.state.task(task_id)["outcome"] == \
            "skipped: the element cheat corrupts a safe_softmax node; this program has none"
        assert m.market(0).task(task_id).state == TaskState.OPEN


def test_solver__corrupt_op_is_the_element_cheats_only():
    with pytest.raises(ValueError, match="corrupt_op is the element cheat's"):
        Solver(cheat="skip", corrupt_op="layer_norm", market=None, store=None, home=None)
