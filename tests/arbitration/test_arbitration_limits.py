"""Programs the dispute game cannot judge are refused off chain (`offchain.dispute.limits`): a
checkpoint interval above 256 (it needs a bisect move the solver worker never sends), a chunk of a
dissected reduction spanning more than 16 leaves, outputs needing more than 16 trace openings.
Each limit is tested just inside and just outside, in the check itself, where a task is published
(`publish_program_task`, `dtm task post`) and where a solver or verifier fetches one (`fetch_task`)."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from click.testing import CliRunner

from offchain.cli import main
from offchain.dispute import moves as M
from offchain.dispute import program_rules as R
from offchain.dispute.limits import UnjudgeableTask, program_unjudgeable_reason
from offchain.ml import LEAF_BYTES, synthetic_dataset
from offchain.ml.artifacts import Dataset
from offchain.ml.capture import ExportConfig, export_program
from offchain.ml.demo import local_cid, program_task
from offchain.ml.models import MLP
from offchain.ml.optim import OptimizerConfig
from offchain.ml.strict_json import canonical_json
from offchain.storage.store import LocalStore
from offchain.ml.errors import TaskError
from offchain.ml.exporter import mlp_preset
from offchain.workers.artifacts import fetch_task, publish_program_task

BATCH = 64
LONG_K = ("checkpoint interval 257 exceeds 256: disputing a segment would need a bisect move that the solver "
          "worker does not make")


@functools.cache
def _preset():
    return mlp_preset(8, (8,), 3, batch_size=BATCH, lr=0.1)


def _program(k: int, cid=local_cid):
    return program_task(*_preset(), synthetic_dataset(BATCH, 8, 3, seed=1), steps=2 * k, k=k, seed=1, cid=cid)


def test_unjudgeable_program__a_checkpoint_interval_over_256_is_refused():
    program = _preset()[0]
    assert program_unjudgeable_reason(program, _program(256).task) is None
    assert program_unjudgeable_reason(program, _program(257).task) == LONG_K


def test_unjudgeable_spec__refused_when_published(tmp_path):
    store = LocalStore(tmp_path / "ipfs")
    data = synthetic_dataset(BATCH, 8, 3, seed=1)
    assert publish_program_task(store, *_preset(), data, steps=512, k=256, seed=1).spec_cid
    with pytest.raises(UnjudgeableTask, match="^checkpoint interval 257 exceeds 256"):
        publish_program_task(store, *_preset(), data, steps=514, k=257, seed=1)


def test_unjudgeable_spec__refused_when_fetched(tmp_path):
    """A spec published by someone else's tooling: solvers and verifiers refuse it on fetch, and
    a task that names no hyper table (the retired MLP graph format) in one line."""
    store = LocalStore(tmp_path / "ipfs")
    good = _program(256, store.add_bytes)
    assert fetch_task(store, store.add_bytes(good.task.to_bytes()), good.task.hash()).task == good.task
    bad = _program(257, store.add_bytes)
    with pytest.raises(UnjudgeableTask) as refused:
        fetch_task(store, store.add_bytes(bad.task.to_bytes()), bad.task.hash())
    assert str(refused.value) == LONG_K
    retired = json.loads(good.task.to_bytes())
    del retired["hyper_root"]
    retired["optimizer"] = {"name": "sgd", "lr": 0.1}
    with pytest.raises(TaskError, match=r"^task spec: missing field\(s\) \['hyper_root'\]$"):
        fetch_task(store, store.add_bytes(canonical_json(retired)), good.task.hash())


def test_unjudgeable_spec__dtm_task_post_says_why_in_one_line(tmp_path):
    def post(k: int):
        return CliRunner().invoke(main, ["--home", str(tmp_path), "task", "post", "--dataset", "synthetic",
                                         "--hidden", "8", "--steps", str(2 * k), "--k", str(k)],
                                  env={"DTM_PASSWORD": "hunter2"})

    refused = post(257)
    assert refused.exit_code == 1
    assert refused.output == f"Error: the dispute game cannot judge this task: {LONG_K}\n"
    accepted = post(256)   # judgeable: stops at the chain (no account in this test), before uploading
    assert "cannot judge" not in accepted.output
    assert "Error: choose an account" in accepted.output


@pytest.mark.parametrize("hidden", [128, 129])
def test_unjudgeable_program__each_chunk_of_a_dissected_reduction_opens_at_most_16_leaves(hidden):
    """A program's 100-term first layer is dissected: each chunk reads 64 terms of column j of
    the weight's transpose. At 128 columns those lie 128 floats apart, 16 leaves (inside); wider,
    the column would spread over 17, so the matmul takes the weight as it is (attrs [1]) and reads
    its row j, one leaf. Both are judgeable."""
    torch.manual_seed(0)
    model, optimizer = MLP(100, (hidden,), 3), OptimizerConfig("sgd", 0.1)
    program = export_program(model, ExportConfig(8, (100,), optimizer=optimizer))
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    task = program_task(program, optimizer, weights, synthetic_dataset(64, 100, 3, seed=1), steps=4, k=2, seed=1).task
    first = next(n for n in program.nodes if n.op == "addmm")
    _, column = R.element_inputs(first, [program.nodes[i] for i in first.inputs], 0)[1]
    leaves = {i * 4 // LEAF_BYTES for i in column[:64]}
    assert (first.attrs, len(leaves)) == (((), 16) if hidden == 128 else ((1,), 1))
    assert program_unjudgeable_reason(program, task) is None


def test_unjudgeable_program__the_output_link_opens_the_state_in_at_most_16_runs():
    """The output link opens the state's nodes in increasing runs within one trace opening each
    (65 roots, 128 siblings): a four-block GPT's 162 state tensors take a few runs and are taken;
    the same outputs listed in decreasing order need one run each, 162 openings, and are refused."""
    from dataclasses import replace

    from offchain.ml.models import GPT

    torch.manual_seed(0)
    model, optimizer = GPT(40, 12, 32, 4, 4), OptimizerConfig("adamw", 1e-3)
    program = export_program(model, ExportConfig(3, (12,), loss="lm_cross_entropy", optimizer=optimizer))
    runs = M.opening_runs(len(program.nodes), program.outputs)
    assert 1 < len(runs) <= 16 and [i for run in runs for i in run] == list(program.outputs)
    for run in runs:
        assert len(run) <= M.MAX_OPEN_NODES and len(M.multiproof([bytes(32)] * len(program.nodes), run)) <= 128
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    x = torch.randint(0, 40, (16, 13)).float()
    task = program_task(program, optimizer, weights, Dataset(x, torch.zeros(16, dtype=torch.int64)),
                        steps=4, k=2, seed=1).task
    assert program_unjudgeable_reason(program, task) is None
    backwards = replace(program, outputs=tuple(sorted(program.outputs, reverse=True)))
    assert program_unjudgeable_reason(backwards, task) == (
        "the program's 162 state tensors need 162 trace openings; an output link proof takes 16")
