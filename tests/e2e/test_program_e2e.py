"""A training program (a captured PyTorch MLP) on the market: posted, trained with proofs by a
solver worker, verified and paid; and a cheating solver on it disputed down to one leaf, link or
element of its program step, proven wrong through the ProgramChecker and slashed."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from offchain.chain.deployment import deployment_path
from offchain.chain.suite import ETHER, Role, TaskState
from offchain.cli import main
from offchain.chain.client import Market
from offchain.dispute.game import END_ELEMENT, END_FOLD
from offchain.ml import Dataset, digits_dataset
from offchain.ml.artifacts import ALPHABET, text_corpus, text_dataset
from offchain.ml.capture import ExportConfig, export_program, initial_tensors
from offchain.ml.models import CNN, GPT, MLP
from offchain.ml.optim import OptimizerConfig
from offchain.node import LOCAL_DEPLOYMENT
from offchain.workers.artifacts import fetch_proof, publish_program_task
from offchain.workers.solver import Solver
from offchain.workers.submitter import Submitter
from offchain.workers.verifier import Verifier
from tests.e2e.harness import SOLVER, SUBMITTER, VERIFIER, local_market, wait_for

pytestmark = pytest.mark.e2e


def _post_program(m) -> int:
    """A 64-16-10 MLP program with SGD momentum on the digits, every reduction within the judge's 64 terms."""
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    program = export_program(model, ExportConfig(8, (64,), optimizer=OptimizerConfig("sgd", 0.1, momentum=0.9)))
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    published = publish_program_task(m.store, program, OptimizerConfig("sgd", 0.1, momentum=0.9), weights,
                                     digits_dataset(), steps=40, k=4, seed=5)
    submitter = Submitter(market=m.market(SUBMITTER), store=m.store, home=m.home)
    return submitter.post(published, payment=ETHER, solver_stake=ETHER, expires_in=3_600, train_window=300)


def test_program_task__two_commands_post_it_and_the_workers_train_verify_and_get_paid(tmp_path):
    """`dtm model export` then `dtm task post --program --weights`: a user's PyTorch model on the market."""
    with local_market(tmp_path) as m:
        m.start(Solver, SOLVER, Role.SOLVER)
        m.start(Verifier, VERIFIER, Role.VERIFIER)

        def dtm(*args):
            done = CliRunner().invoke(main, ["--home", str(m.home), "--rpc", m.anvil.url, "--deployment",
                                             str(deployment_path(*LOCAL_DEPLOYMENT, tmp_path / "deployments")),
                                             "--dev-account", str(SUBMITTER), *args])
            assert done.exit_code == 0, done.output
            return done.output

        program, weights, rows = tmp_path / "net.json", tmp_path / "init.safetensors", tmp_path / "digits.csv"
        digits = digits_dataset()
        np.savetxt(rows, np.column_stack([digits.x.numpy(), digits.y.numpy()]), delimiter=",", fmt="%g")
        dtm("model", "export", "offchain.ml.models:MLP", "--kwargs", '{"input_dim": 64, "hidden": [16], "classes": 10}',
            "--input-shape", "64", "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9",
            "--out", str(program), "--weights-out", str(weights))
        posted = dtm("task", "post", "--program", str(program), "--weights", str(weights), "--data", str(rows),
                     "--steps", "40", "--k", "4", "--payment", "1")
        task_id = int(posted.split("task ")[-1].split()[0])
        reader = m.market(0)
        wait_for(lambda: reader.task(task_id).state == TaskState.FINALISED, 180, "finalisation")
        assert not reader.events("Challenged", m.deployment.block, task_id=task_id)
        [paid] = reader.events("TaskFinalised", m.deployment.block, task_id=task_id)
        [submitted] = reader.events("ProofSubmitted", m.deployment.block, task_id=task_id)
        proof = fetch_proof(m.store, submitted["args"]["proof_cid"], submitted["args"]["proof_root"])
        assert paid["args"]["solver_payment"] > 0 and proof.final_loss < 2.0  # from ln 10 = 2.30

        # the result: weights checked against the paid proof, scored on the rows the submitter kept back
        out, curve = tmp_path / "trained.safetensors", tmp_path / "curve.png"
        shown = dtm("task", "result", str(task_id), "--out", str(out), "--plot", str(curve))
        model = MLP(64, (16,), 10)
        trained = load_file(out)  # the committed checkpoint: the parameters and the optimizer's buffers
        model.load_state_dict({name: trained[name] for name in model.state_dict()})
        [held] = (m.home / "holdout").iterdir()
        kept = Dataset.from_bytes(held.read_bytes(), 64)
        with torch.no_grad():  # a preset's program is scored by the preset's forward pass, every row
            logits = model(kept.x)
        plain = float(torch.nn.functional.cross_entropy(logits, kept.y))
        accuracy = float((logits.argmax(1) == kept.y).float().mean())
        assert re.search(r"^weights \S+  task's rows \(\d+\)  accuracy [\d.]+%  loss [\d.]+  final loss [\d.]+$",
                         shown, re.M), shown
        line = next(line for line in shown.splitlines() if line.startswith("held-out"))
        assert line.startswith(f"held-out ({kept.n_rows} rows)  accuracy {100 * accuracy:.1f}%  loss "), shown
        assert abs(float(line.split()[-1]) - plain) < 1e-3 and plain < 2.0, (line, plain)
        assert "loss curve (11 checkpoints)" in shown and curve.stat().st_size > 0, shown


#: every character of the lower-cased text corpus (77): a vocabulary of 78, so the loss's rows are long
EVERY_CHARACTER = "".join(sorted(set(text_corpus().decode("utf-8").lower())))


def _post_gpt(m, alphabet: str = ALPHABET) -> int:
    """A one-block GPT (vocab 49, 12 positions, width 32) with AdamW, warm-up and cosine on the
    text corpus: 48 positions a batch, so its attention and normalisation rows fit the judge, and
    the linear layers' longer reductions (128 terms) are dissected; so are its loss's rows with
    the corpus's every character (vocab 78)."""
    torch.manual_seed(0)
    data = text_dataset(12, alphabet)
    model = GPT(len(alphabet) + 1, 12, 32, 4, 1)
    optimizer = OptimizerConfig("adamw", 3e-3, weight_decay=0.01, warmup_steps=4, schedule="cosine", clip_norm=1.0)
    program = export_program(model, ExportConfig(4, (12,), loss="lm_cross_entropy", optimizer=optimizer))
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    published = publish_program_task(m.store, program, optimizer, weights, data, steps=24, k=4, seed=5)
    submitter = Submitter(market=m.market(SUBMITTER), store=m.store, home=m.home)
    return submitter.post(published, payment=ETHER, solver_stake=ETHER, expires_in=3_600, train_window=300)


def _post_cnn(m, norm: str = "group") -> int:
    """A CNN (conv 3x3 + GroupNorm + ReLU + 2x2 max pool twice, widths 4 and 8) with SGD momentum
    on the digits as 1x8x8 images, batch 16: its GroupNorm rows fit the judge, and its convolution
    gradients over the batch's pixels (up to 1,024 terms) are dissected. ``norm="batch"``: BatchNorm
    instead, its running statistics state."""
    torch.manual_seed(0)
    model = CNN(1, 8, 8, 10, widths=(4, 8), norm=norm)
    optimizer = OptimizerConfig("sgd", 0.05, momentum=0.9)
    program = export_program(model, ExportConfig(16, (1, 8, 8), optimizer=optimizer))
    weights = initial_tensors(model, program)
    published = publish_program_task(m.store, program, optimizer, weights, digits_dataset(), steps=24, k=4, seed=5)
    submitter = Submitter(market=m.market(SUBMITTER), store=m.store, home=m.home)
    return submitter.post(published, payment=ETHER, solver_stake=ETHER, expires_in=3_600, train_window=300)


def _lost_dispute(tmp_path, cheat: str, post=_post_program, corrupt_op: str | None = None,
                  ) -> tuple[dict, dict, Market, list[int]]:
    """A solver cheating with `cheat` (the element cheat in the last ``corrupt_op`` node) on the
    program task ``post`` posts, against the real verifier:
    the dispute's end (DisputeEnded), the receipt of the move that ended it, a read-only market
    client (its chain gone) and the lengths of the reductions the dispute went inside, once the
    cheater has lost its stake and nothing is left locked."""
    with local_market(tmp_path) as m:
        solver = m.start(Solver, SOLVER, Role.SOLVER, cheat=cheat, corrupt_op=corrupt_op)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = post(m)
        reader = m.market(0)
        [ended] = wait_for(lambda: reader.arbiter.events.DisputeEnded().get_logs(
            from_block=m.deployment.block, argument_filters={"task_id": task_id}), 240, "the verdict")
        assert not ended["args"]["solver_won"]
        bonded, locked = reader.call("accounts", solver.address)[:2]
        assert bonded == 5 * ETHER - reader.task(task_id).solver_stake and locked == 0
        opened = reader.arbiter.events.ReductionOpened().get_logs(from_block=m.deployment.block)
        return (ended, reader.w3.eth.get_transaction_receipt(ended["transactionHash"]), reader,
                [e["args"]["n"] for e in opened])


def test_program_task__a_cheating_solver_loses_the_dispute_and_its_stake(tmp_path):
    ended, *_ = _lost_dispute(tmp_path, "skip")  # every segment wrong: always caught
    assert ended["args"]["reason"] in (2, 3, 4)  # proven through a program checker


def test_program_task__an_element_cheat_is_proven_wrong_by_one_element_and_slashed(tmp_path):
    """One wrong element of one mid-network node, every checkpoint and trace consistent with it:
    only `prove_element` can catch it, and the real verifier and dispute player do."""
    ended, proven, market, reductions = _lost_dispute(tmp_path, "element")
    assert ended["args"]["reason"] == END_ELEMENT and reductions == []
    assert proven["to"] == market.programs.address  # the proof concluded it
    print(f"\nprove_element: {proven['gasUsed']:,} gas")


def test_program_task__a_transformer_element_cheat_is_caught_inside_a_long_reduction(tmp_path):
    """The element cheat on a GPT: the wrong element is one of a 128-term matmul, longer than the
    judge's 64, so the dispute goes inside the reduction: the cheater's exact partials do not add
    up to its claim, and the fold proof ends it."""
    ended, proven, market, reductions = _lost_dispute(tmp_path, "element", _post_gpt)
    assert ended["args"]["reason"] == END_FOLD and reductions == [128]
    assert proven["to"] == market.program_reducer.address
    print(f"\nprove_fold: {proven['gasUsed']:,} gas")


def test_program_task__a_transformer_element_cheat_in_a_long_softmax_row_is_caught_inside_it(tmp_path):
    """The element cheat in the gradient of the GPT's loss, a log-softmax row over a vocabulary of
    78, longer than the judge's 64 (a wrong log-probability far from every label would not change
    the training, so no verifier would challenge it): the dispute goes inside the row, the cheater
    posts the exact partials of its sum, and the fold of the row proves its element wrong."""
    ended, proven, market, reductions = _lost_dispute(tmp_path, "element", lambda m: _post_gpt(m, EVERY_CHARACTER),
                                                      "log_softmax_grad")
    assert ended["args"]["reason"] == END_FOLD and reductions == [len(EVERY_CHARACTER) + 1]
    assert proven["to"] == market.program_reducer.address
    print(f"\nprove_program_row: {proven['gasUsed']:,} gas")


def test_program_task__a_cnn_element_cheat_is_caught_inside_a_convolution_gradient(tmp_path):
    """The element cheat on a CNN: the wrong element is one of the first convolution's weight
    gradient, a reduction over the batch's output pixels (16 x 8 x 8 = 1,024 terms, 784 to 896 for
    a tap that padding cuts), dissected."""
    ended, proven, market, reductions = _lost_dispute(tmp_path, "element", _post_cnn)
    assert ended["args"]["reason"] == END_FOLD and len(reductions) == 1 and 784 <= reductions[0] <= 1024
    assert proven["to"] == market.program_reducer.address


def test_program_task__a_batch_norm_cnn_element_cheat_in_its_normalisation_is_proven_wrong(tmp_path):
    """The element cheat in a BatchNorm CNN's last rsqrt: one channel's 1/sqrt(var + eps) of the
    second BatchNorm, written as sums and elementwise ops; one element proves it wrong."""
    ended, proven, market, reductions = _lost_dispute(tmp_path, "element", lambda m: _post_cnn(m, "batch"), "rsqrt")
    assert ended["args"]["reason"] == END_ELEMENT and reductions == []
    assert proven["to"] == market.programs.address
