"""A solver process killed mid-training resumes from its saved checkpoints and finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from offchain.chain.suite import ETHER, Role, TaskState
from offchain.workers.verifier import Verifier
from tests.e2e.harness import SOLVER, VERIFIER, dev_account, local_market, wait_for

pytestmark = pytest.mark.e2e

# every transaction the solver's account sends over the task's life, once each: the test's stake
# deposit, then the worker's claim, submit, finalise (revealing the secret) and withdraw of its credit
SOLVER_TRANSACTIONS = ("deposit", "claim", "draw", "submit", "draw", "finalise", "withdraw")


def _solver_process(m, log_path):
    env = {**os.environ, "DTM_RPC": m.anvil.url, "DTM_HOME": str(m.home),
           "DTM_DEPLOYMENTS_DIR": str(m.home.parent / "deployments")}
    env.pop("IPFS_API", None)
    return subprocess.Popen([sys.executable, "-m", "offchain.cli", "--dev-account", str(SOLVER), "solver", "run",
                             "--poll", "0.3"], env=env, stdout=open(log_path, "a"), stderr=subprocess.STDOUT)


def test_solver_killed_mid_training__resumes_and_finishes_without_double_sending(tmp_path):
    with local_market(tmp_path) as m:
        m.market(SOLVER).deposit(Role.SOLVER, 5 * ETHER)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = m.post(steps=12_000, k=40, hidden=256)
        log_path = tmp_path / "solver.log"
        solver = _solver_process(m, log_path)
        saved = m.home / "workers"
        try:
            wait_for(lambda: len(list(saved.rglob("*.safetensors"))) >= 30, timeout=120, what="checkpoints on disk")
            solver.send_signal(signal.SIGKILL)
            solver.wait(10)
            reader = m.market(0)
            assert reader.task(task_id).state == TaskState.CLAIMED  # killed before it could submit
            written = len(list(saved.rglob("*.safetensors")))
            assert written < 301
            solver = _solver_process(m, log_path)
            wait_for(lambda: reader.task(task_id).state == TaskState.FINALISED, timeout=180, what="finalisation")
            solver_address = dev_account(SOLVER).address
            wait_for(lambda: reader.call("credits", solver_address) == 0, timeout=60, what="the solver's withdrawal")
            # the worker logs what it withdrew and where its stake stands
            wait_for(lambda: "credits withdrawn so far" in log_path.read_text(), timeout=30, what="the stake line")
        finally:
            solver.send_signal(signal.SIGTERM)
            solver.wait(10)
        log = log_path.read_text()
        assert "resumed training from checkpoint" in log
        assert "withdrew " in log and " ETH of credits" in log and "5 ETH bonded (0 ETH locked" in log
        assert len(reader.events("TaskClaimed", m.deployment.block, task_id=task_id)) == 1
        assert len(reader.events("ProofSubmitted", m.deployment.block, task_id=task_id)) == 1
        # the chain refuses a repeated move, so the counts above hold even for a worker that re-sends;
        # the account's nonce counts every transaction it sent
        assert reader.w3.eth.get_transaction_count(solver_address) == len(SOLVER_TRANSACTIONS)
