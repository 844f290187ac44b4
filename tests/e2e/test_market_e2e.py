"""End to end on a real Anvil: workers talking only through the chain and the content store."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from offchain.chain.deployment import deployment_path
from offchain.chain.suite import ETHER, Role, TaskState, format_ether
from offchain.cli import main
from offchain.dispute.game import PROVE
from offchain.dispute.status import dispute_status
from offchain.ml import load_dataset
from offchain.storage.importer import compute_cid
from offchain.node import LOCAL_DEPLOYMENT
from offchain.workers.artifacts import fetch_task
from offchain.workers.solver import Solver
from offchain.workers.submitter import fetch_result, loss_curve
from offchain.workers.verifier import Verifier, Whistleblower
from tests.e2e.harness import CLOCK, SOLVER, SUBMITTER, VERIFIER, WHISTLEBLOWER, local_market, wait_for

pytestmark = pytest.mark.e2e


def _dtm(m, tmp_path, *args):
    return CliRunner().invoke(main, ["--home", str(m.home), "--rpc", m.anvil.url, "--deployment",
                                     str(deployment_path(*LOCAL_DEPLOYMENT, tmp_path / "deployments")), *args])


def _state(market, task_id):
    return market.task(task_id).state


def _csv(tmp_path, name: str, column: str, last):
    """60 rows of two features a, b in tenths, then ``last(a, b)`` in ``column``."""
    rows = [(i % 10 / 10, i * 7 % 10 / 10) for i in range(60)]
    path = tmp_path / name
    path.write_text(f"a,b,{column}\n" + "".join(f"{a},{b},{last(a, b)}\n" for a, b in rows))
    return path


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


def _dispute_outcome(market, deployment, task_id):
    ended = market.arbiter.events.DisputeEnded().get_logs(from_block=deployment.block,
                                                           argument_filters={"task_id": task_id})
    return ended[0]["args"] if ended else None


@pytest.mark.parametrize("cheat", ["skip", "fabricate", "wrong-data"])
def test_cheating_solver__loses_the_dispute_and_its_stake(tmp_path, cheat):
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER, cheat=cheat)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = m.post()
        reader = m.market(0)
        outcome = wait_for(lambda: _dispute_outcome(reader, m.deployment, task_id), 120, "the verdict")
        assert not outcome["solver_won"] and outcome["reason"] in (2, 3, 4)  # link, data or element proof
        [challenge] = reader.events("Challenged", m.deployment.block, task_id=task_id)
        assert challenge["args"]["challenger"] == m.market(VERIFIER).account.address
        # the cheater's locked stake is gone and it does not try the reopened task again
        bonded, locked = reader.call("accounts", solver.address)[:2]
        assert bonded == 5 * ETHER - reader.task(task_id).solver_stake and locked == 0
        assert reader.task(task_id).state == TaskState.OPEN


def test_honest_solver__beats_an_adversarial_verifier_and_is_paid(tmp_path):
    with local_market(tmp_path) as m:
        m.start(Solver, SOLVER, Role.SOLVER)
        verifier = m.start(Verifier, VERIFIER, Role.VERIFIER, adversarial=True)
        task_id = m.post()
        reader = m.market(0)
        # while the challenger has nothing to prove, `task status` names the phase, whose move, the clocks
        view = wait_for(lambda: (v := reader.task(task_id)).state == TaskState.DISPUTED and
                        reader.read(reader.arbiter, "disputes", v.dispute_id)["phase"] == PROVE and v, 120,
                        "the prove phase")
        status = dispute_status(reader, view.dispute_id, reader.now())
        assert (status.to_move, status.mover, status.span) == ("challenger", verifier.address, 1)
        assert 0 <= status.clock_left <= CLOCK and status.solver_won is None
        shown = _dtm(m, tmp_path, "task", "status", str(task_id)).output
        assert re.search(rf"dispute {view.dispute_id} over segment \d+, \d+ moves: prove, the challenger "
                         rf"{verifier.address} must prove one link, data row or node element of the step wrong; "
                         rf"\d+ s left on its clock \(the solver has \d+ s\)\n  argued: step {status.first_step}, "
                         rf"its trace committed", shown), shown
        outcome = wait_for(lambda: _dispute_outcome(reader, m.deployment, task_id), 120, "the verdict")
        assert outcome["solver_won"] and outcome["reason"] == 1  # the challenger ran out of clock
        assert dispute_status(reader, view.dispute_id, reader.now()).lines() == [
            f"dispute {view.dispute_id} over segment {status.segment}, {status.moves} moves: ended, the solver won "
            "(the other side's clock ran out)"]
        terms = reader.terms(reader.task(task_id).terms_id)
        assert reader.call("accounts", verifier.address)[0] == 5 * ETHER - terms.verifier_bond
        wait_for(lambda: _state(reader, task_id) == TaskState.FINALISED, 90, "finalisation")
        # the solver got the winner share of the verifier's bond, and all of the escrow (no fee)
        credited = [e["args"]["amount"] for e in reader.contract.events.Credited().get_logs(
            from_block=m.deployment.block, argument_filters={"account": m.market(SOLVER).account.address})]
        [paid] = reader.events("TaskFinalised", m.deployment.block, task_id=task_id)
        assert paid["args"]["verifier_fee"] == 0
        assert credited == [terms.verifier_bond * terms.winner_share_ppm // 10**6, paid["args"]["solver_payment"]]


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
        outcome = wait_for(lambda: _dispute_outcome(reader, m.deployment, task_id), 120, "the verdict")
        assert not outcome["solver_won"] and outcome["reason"] in (2, 3, 4)  # proven, not a timeout
        # the lazy verifier forfeits its bond and the cheater its stake, the winner share to the whistleblower
        terms, stake = reader.terms(1), reader.task(task_id).solver_stake
        verifier = m.market(VERIFIER).account.address
        assert tuple(reader.call("accounts", verifier)[:2]) == (5 * ETHER - terms.verifier_bond, 0)
        share = (terms.verifier_bond + stake) * terms.winner_share_ppm // 10**6
        assert reader.call("credits", m.market(WHISTLEBLOWER).account.address) == share


def test_forced_error__proven_by_verifier_paid_from_jackpot_then_genuine_proof_paid(tmp_path):
    with local_market(tmp_path, forced_error_ppm=1_000_000) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = m.post()
        reader = m.market(0)
        wait_for(lambda: _state(reader, task_id) == TaskState.FINALISED, timeout=180, what="finalisation")
        # the solver declared the forced error and let the verifier prove it in the game
        assert reader.events("ForcedErrorDeclared", m.deployment.block, task_id=task_id)
        outcome = _dispute_outcome(reader, m.deployment, task_id)
        assert not outcome["solver_won"] and outcome["reason"] in (2, 3, 4)
        [revealed] = reader.events("ForcedErrorRevealed", m.deployment.block, task_id=task_id)
        verifier = m.market(VERIFIER).account.address
        assert revealed["args"]["exposed_by"] == verifier
        assert reader.call("accounts", solver.address)[0] == 5 * ETHER  # nobody was slashed
        assert reader.call("accounts", verifier)[0] == 5 * ETHER
        paid = reader.contract.events.JackpotPaid().get_logs(from_block=m.deployment.block)
        assert [e["args"]["winner"] for e in paid] == [verifier] and paid[0]["args"]["amount"] > 0
        # `dtm jackpot` lists the payout and the taxes that funded the pool, newest first
        funded = reader.contract.events.JackpotFunded().get_logs(from_block=m.deployment.block)
        shown, payout = _dtm(m, tmp_path, "jackpot").output, paid[0]["args"]
        assert f"paid {format_ether(payout['amount'])} to {verifier} (pool {format_ether(payout['pool'])})" in shown
        moves = [line.split()[2] for line in shown.splitlines()[1:]]
        assert funded and sorted(moves) == sorted(["paid"] + ["funded"] * len(funded))
        rounds = [e["args"]["round"] for e in reader.events("ProofSubmitted", m.deployment.block, task_id=task_id)]
        assert rounds == [0, 1]
        assert fetch_result(reader, m.store, task_id).accuracy > 0.8


def test_own_regression_csv__an_mlp_regressor_is_trained_paid_and_scored_by_its_held_out_error(tmp_path):
    """`dtm task post --data prices.csv --targets 1`: the float target is the last column of the
    committed rows, the MLP preset regresses it with mean squared error; the verifier accepts the
    proof and `dtm task result` reports the held-out squared error, the mean over the kept rows of
    (the trained model's output − target)²."""
    import torch
    from safetensors.torch import load_file

    from offchain.ml.models import MLP

    csv = _csv(tmp_path, "prices.csv", "price", lambda a, b: 2 * a - b + 0.5)
    with local_market(tmp_path) as m:
        m.start(Solver, SOLVER, Role.SOLVER)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        posted = _dtm(m, tmp_path, "--dev-account", str(SUBMITTER), "task", "post", "--data", str(csv), "--targets",
                      "1", "--hidden", "8", "--steps", "40", "--k", "4", "--batch-size", "8", "--lr", "0.2")
        assert posted.exit_code == 0, posted.output
        assert "54 training rows + 6 held-out, 2 features, 1 regression target" in posted.output
        assert re.search(r"^model the MLP preset 2-8-1: 33 parameters", posted.output, re.M), posted.output
        task_id = int(posted.output.split("\ntask ")[1].split()[0])
        reader = m.market(0)
        wait_for(lambda: _state(reader, task_id) == TaskState.FINALISED, what="finalisation")
        out = tmp_path / "trained.safetensors"
        shown = _dtm(m, tmp_path, "task", "result", str(task_id), "--out", str(out)).output
        line = next(line for line in shown.splitlines() if line.startswith("held-out"))
        assert "accuracy" not in line, shown
        [held] = (m.home / "holdout").iterdir()
        kept = load_dataset(csv, targets=1, holdout=0.1, seed=1).holdout
        assert held.read_bytes() == kept.to_bytes()
        model = MLP(2, (8,), 1)
        model.load_state_dict({name: t for name, t in load_file(out).items() if name in model.state_dict()})
        with torch.no_grad():
            error = float(((model(kept.x[:, :2]) - kept.x[:, 2:]) ** 2).mean())
        start = float((kept.x[:, 2] - kept.x[:, 2].mean()).pow(2).mean())  # a constant guess's error
        assert line == f"held-out (6 rows)  loss {float(line.split()[-1]):.4f}" and abs(float(line.split()[-1]) - error) < 1e-3
        assert error < 0.5 * start, (error, start)


def test_own_csv_task__result_reports_the_held_out_score(tmp_path):
    """`dtm task post --data` publishes the training rows of an MLP preset task (two hidden layers, a
    program like any exported model); `dtm task result` scores the held-out ones."""
    csv = _csv(tmp_path, "sums.csv", "size", lambda a, b: "big" if a + b > 0.9 else "small")
    with local_market(tmp_path) as m:
        m.start(Solver, SOLVER, Role.SOLVER)
        m.start(Verifier, VERIFIER, Role.VERIFIER)

        def dtm(*args):
            return _dtm(m, tmp_path, "--dev-account", str(SUBMITTER), *args)

        posted = dtm("task", "post", "--data", str(csv), "--hidden", "8,4", "--steps", "40", "--k", "4",
                     "--batch-size", "8", "--lr", "0.5", "--payment", "1")
        assert posted.exit_code == 0, posted.output
        assert "54 training rows + 6 held-out, 2 features, 2 classes; labels big=0, small=1" in posted.output
        assert re.search(r"^model the MLP preset 2-8-4-2: 70 parameters, [\d.]+ GFLOP over 40 steps; sgd, lr 0.5$",
                         posted.output, re.M), posted.output
        task_id = int(posted.output.split("\ntask ")[1].split()[0])
        training = load_dataset(csv, holdout=0.1, seed=1).train.to_bytes()  # only these rows are published
        assert m.store.cat(compute_cid(training), timeout=1) == training
        reader = m.market(0)
        bundle = fetch_task(m.store, posted.output.split(" spec ")[1].split()[0], reader.task(task_id).spec_hash)
        assert bundle.graph.program.meta["model_kwargs"]["hidden"] == [8, 4]
        wait_for(lambda: _state(reader, task_id) == TaskState.FINALISED, what="finalisation")
        held = fetch_result(reader, m.store, task_id, m.home).holdout
        assert held.rows == 6 and fetch_result(reader, m.store, task_id).holdout is None
        shown = dtm("task", "result", str(task_id), "--plot", str(tmp_path / "curve.png")).output
        assert f"held-out (6 rows)  accuracy {100 * held.accuracy:.1f}%  loss {held.loss:.4f}" in shown
        # the curve: every checkpoint of the proof, scored on the published and the held-out rows
        curve = loss_curve(reader, m.store, task_id, m.home)
        assert [p.step for p in curve] == list(range(0, 44, 4)) and curve[-1].loss < curve[0].loss
        assert curve[-1].holdout_loss == pytest.approx(held.loss, rel=1e-5)
        assert (f"loss curve (11 checkpoints): training rows {curve[0].loss:.4f} -> {curve[-1].loss:.4f}, "
                f"held-out {curve[0].holdout_loss:.4f} -> {curve[-1].holdout_loss:.4f}") in shown
        assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
