"""A group task on the market (docs/group-tasks.md §4.3): a byte-level GPT over 2 pipeline stages ×
2 data-parallel replicas, its messages quantised (4-bit activations, 8-bit gradients and all-reduce), posted with `dtm group post`, trained by the solver's four processes
(each participant running its step program and publishing its parts), verified by a verifier that
replays every participant's segments from the published parts, and paid; and a group whose last
participant tampers with its state, challenged at that participant's segment and beaten on chain
through the group's task (that group trains with DiLoCo: its replicas exchange 4-bit
pseudo-gradients every other step). A forced error on a group task is caught and paid from the jackpot the
same way."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from offchain.chain.deployment import deployment_path
from offchain.chain.suite import ETHER, Role, TaskState
from offchain.cli import main
from offchain.dispute.game import END_LINK
from offchain.distributed.group import group_task, save_spec
from offchain.distributed.spec import DiLoCoConfig, GPTShape, QuantizeConfig, TrainSpec
from offchain.distributed.stage import build_gpt, heldout_loss
from offchain.node import LOCAL_DEPLOYMENT
from offchain.workers.artifacts import publish_group_task
from offchain.workers.solver import Solver, forced_tamper
from offchain.workers.submitter import Submitter
from offchain.workers.verifier import Verifier
from tests.e2e.harness import SOLVER, SUBMITTER, VERIFIER, local_market, wait_for

pytestmark = pytest.mark.e2e

#: 2 stages x 2 replicas (4 processes), 4 steps, a checkpoint every 2: 8 participant segments; the
#: activations cross in 4 bits, the gradients and the all-reduce contributions in 8
SPEC = TrainSpec(model=GPTShape(seq_len=8, dim=16, heads=2, layers=2), stages=2, replicas=2, steps=4, batch_size=8,
                 micro_batches=2, train_rows=16, holdout_rows=16, sampling="task", checkpoint_interval=2,
                 programs=True, quantize=QuantizeConfig(bits=4, grad_bits=8, sum_bits=8))
#: the same group with DiLoCo: two inner steps a round, 4-bit pseudo-gradients (error feedback)
DILOCO = dataclasses.replace(SPEC, quantize=None, diloco=DiLoCoConfig(inner_steps=2, compress="quant", bits=4))


def test_group_task__posted_its_forced_error_caught_and_paid_from_the_jackpot_then_verified_by_replay_and_paid(tmp_path):
    """The draw makes the first proof a forced error: one participant, at a step drawn from the
    claim's secret, tampers with its state. The verifier replays the group, challenges that
    participant's segment and wins through the group's task; the jackpot pays it and nobody is
    slashed. The genuine proof follows, every participant segment replays exactly, and it is paid."""
    with local_market(tmp_path, forced_error_ppm=1_000_000) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER)
        verifier = m.start(Verifier, VERIFIER, Role.VERIFIER)
        save_spec(SPEC, tmp_path / "g.json")
        done = CliRunner().invoke(main, ["--home", str(m.home), "--rpc", m.anvil.url, "--deployment",
                                         str(deployment_path(*LOCAL_DEPLOYMENT, tmp_path / "deployments")),
                                         "--dev-account", str(SUBMITTER), "group", "post", str(tmp_path / "g.json"),
                                         "--payment", "1", "--train-window", "600"])
        assert done.exit_code == 0, done.output
        task_id = int(done.output.split("group task ")[1].split()[0])
        reader, group = m.market(0), group_task(SPEC)
        assert reader.task(task_id).spec_hash == group.hash()
        wait_for(lambda: reader.task(task_id).state == TaskState.FINALISED, 600, "finalisation")
        # the forced error: declared, proven in the game at the participant the secret drew
        assert reader.events("ForcedErrorDeclared", m.deployment.block, task_id=task_id)
        [ended] = reader.arbiter.events.DisputeEnded().get_logs(
            from_block=m.deployment.block, argument_filters={"task_id": task_id})
        assert not ended["args"]["solver_won"] and ended["args"]["reason"] == END_LINK
        tamper = forced_tamper(SPEC, bytes.fromhex(solver.state.task(task_id)["secret"]))
        [challenged] = reader.events("Challenged", m.deployment.block, task_id=task_id)
        assert challenged["args"]["segment"] == group.segment(tamper.rank, tamper.step // SPEC.checkpoint_interval)
        [revealed] = reader.events("ForcedErrorRevealed", m.deployment.block, task_id=task_id)
        assert revealed["args"]["exposed_by"] == verifier.address
        paid = reader.contract.events.JackpotPaid().get_logs(from_block=m.deployment.block)
        assert [e["args"]["winner"] for e in paid] == [verifier.address] and paid[0]["args"]["amount"] > 0
        assert reader.call("accounts", solver.address)[0] == 5 * ETHER  # nobody was slashed
        assert reader.call("accounts", verifier.address)[0] == 5 * ETHER
        # then the genuine proof: verified by replay and paid
        rounds = [e["args"]["round"] for e in reader.events("ProofSubmitted", m.deployment.block, task_id=task_id)]
        assert rounds == [0, 1]
        [paid] = reader.events("TaskFinalised", m.deployment.block, task_id=task_id)
        assert paid["args"]["solver_payment"] > 0
        verdicts = verifier.state.task(task_id)["verdicts"]
        assert sorted(v["accept"] for v in verdicts.values()) == [False, True]
        assert [v["reason"] for v in verdicts.values() if v["accept"]] == ["8 participant segments replay exactly"]
        # the submitter gets the whole model, checked against the proof it paid for
        got = CliRunner().invoke(main, ["--home", str(m.home), "--rpc", m.anvil.url, "--deployment",
                                        str(deployment_path(*LOCAL_DEPLOYMENT, tmp_path / "deployments")),
                                        "task", "result", str(task_id), "--out", str(tmp_path / "model.safetensors")])
        assert got.exit_code == 0, got.output
        model = build_gpt(SPEC)
        model.load_state_dict(load_file(str(tmp_path / "model.safetensors")))  # strict: every parameter
        assert f"held-out loss {heldout_loss(SPEC, model.state_dict()):.4f}" in got.output


def test_group_task__a_participant_that_tampers_with_its_state_loses_the_dispute_through_the_group_s_task(tmp_path):
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER, cheat="skip")
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        published = publish_group_task(m.store, group_task(DILOCO))
        task_id = Submitter(market=m.market(SUBMITTER), store=m.store, home=m.home).post(
            published, payment=ETHER, solver_stake=ETHER, expires_in=3_600, train_window=600)
        reader = m.market(0)
        [ended] = wait_for(lambda: reader.arbiter.events.DisputeEnded().get_logs(
            from_block=m.deployment.block, argument_filters={"task_id": task_id}), 600, "the verdict")
        # its trace of the last step of that segment is honest: the outputs are not the committed state
        assert not ended["args"]["solver_won"] and ended["args"]["reason"] == END_LINK
        receipt = reader.w3.eth.get_transaction_receipt(ended["transactionHash"])
        assert receipt["to"] == reader.program_links.address
        print(f"\nprove_output_link on a group participant: {receipt['gasUsed']:,} gas")
        [challenged] = reader.events("Challenged", m.deployment.block, task_id=task_id)
        # the last participant (rank 3) tampers after step 2, in its segment 1: the group's segment 3 · 2 + 1
        assert challenged["args"]["segment"] == published.group.segment(3, 1)
        bonded, locked = reader.call("accounts", solver.address)[:2]
        assert bonded == 5 * ETHER - reader.task(task_id).solver_stake and locked == 0
