"""Proof of learning for training programs: a CNN on real digits with momentum SGD (GroupNorm, or
BatchNorm whose running statistics are state) and a transformer on real text with AdamW, warm-up +
cosine and clipping train with checkpoints of their whole state, resume bitwise, pass an honest
verifier and fail a cheating one."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from torch import nn
from eth_abi import encode as abi_encode

from offchain.dispute import program_rules as R
from offchain.dispute.limits import UnjudgeableTask
from offchain.ml import cheats
from offchain.ml.artifacts import Dataset, digits_dataset, text_dataset
from offchain.ml.commit import keccak256
from offchain.ml.capture import ExportConfig, export_program
from offchain.ml.demo import module_task, program_task
from offchain.ml.errors import GraphError, TaskError
from offchain.ml.models import CNN, GPT
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program_training import ProgramTraining
from offchain.ml.task import TrainingTask
from offchain.ml.train import Checkpoint, build_proof, step_trace, train
from offchain.ml.verify import profile_threshold, verify
from offchain.storage.store import LocalStore
from offchain.workers.artifacts import ArtifactMismatch, fetch_task, load_task

SEQ = 16


def _cnn(norm: str = "group"):
    torch.manual_seed(0)
    model = CNN(1, 8, 8, 10, widths=(4, 8), norm=norm)
    config = ExportConfig(16, (1, 8, 8), optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))
    return module_task(model, config, digits_dataset(), steps=12, k=3, seed=5)


def _gpt():
    torch.manual_seed(0)
    model = GPT(256, SEQ, 32, 2, 1)
    optimizer = OptimizerConfig("adamw", 3e-3, weight_decay=0.01, warmup_steps=2, schedule="cosine", clip_norm=1.0)
    config = ExportConfig(8, (SEQ,), loss="lm_cross_entropy", optimizer=optimizer)
    return module_task(model, config, text_dataset(SEQ), steps=8, k=2, seed=9)


FAMILIES = {"cnn": _cnn, "cnn-batchnorm": functools.partial(_cnn, "batch"), "gpt": _gpt}


@functools.cache
def _task(name):
    demo = FAMILIES[name]()
    return demo, train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph)


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return _task(request.param)


def test_program_pol__checkpoints_hold_the_whole_state_and_the_loss_falls(family):
    demo, result = family
    buffers = [slot.name for slot in demo.graph.program.state if slot.kind == "buffer"]
    assert buffers and set(result.checkpoints[-1].params) == set(demo.graph.param_names)
    assert any(float(result.checkpoints[-1].params[b].abs().max()) > 0 for b in buffers)  # moments moved
    for stat in (slot.name for slot in demo.graph.program.state if slot.kind == "stat"):  # running statistics
        assert not torch.equal(result.checkpoints[-1].params[stat], result.checkpoints[0].params[stat])
    assert result.checkpoints[0].root == demo.task.weights_root
    assert len(result.checkpoints) == demo.task.num_checkpoints
    assert sum(result.losses[-2:]) < sum(result.losses[:2])


def test_program_pol__resume_from_a_checkpoint_reproduces_the_run_bitwise(family):
    demo, result = family
    blob = result.checkpoints[2].to_bytes(demo.spec)
    resumed = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph,
                    resume_from=Checkpoint.from_bytes(blob, demo.spec, 2, demo.task.checkpoint_interval))
    assert resumed.roots == result.roots[2:]


def test_program_pol__an_honest_proof_is_accepted(family):
    demo, result = family
    threshold = profile_threshold(demo.graph, demo.task, demo.spec, demo.dataset, demo.weights, segments=1)
    assert {name for _, name, _ in threshold.observations} == {"threads", "float64"}
    verdict = verify(demo.task, demo.spec, demo.dataset, build_proof(demo.task, result),
                     [c.to_bytes(demo.spec) for c in result.checkpoints], threshold.value, seed=3,
                     graph=demo.graph, stop_at_first=False)
    assert verdict.accept, verdict.reason
    assert max(verdict.distances.values()) <= threshold.value


@pytest.mark.parametrize("cheat", ["skip", "stall", "wrong-data"])
def test_program_pol__a_cheating_proof_is_rejected(family, cheat):
    demo, _ = family
    run = {"skip": lambda: cheats.skip_steps(demo),
           "stall": lambda: cheats.fabricate_segments(demo, range(demo.task.num_segments)),
           "wrong-data": lambda: cheats.wrong_data(demo)}[cheat]()
    threshold = profile_threshold(demo.graph, demo.task, demo.spec, demo.dataset, demo.weights, segments=1)
    verdict = verify(demo.task, demo.spec, demo.dataset, run.proof, run.checkpoint_blobs(demo), threshold.value,
                     seed=3, graph=demo.graph)
    assert not verdict.accept
    assert verdict.failing_segment in run.bad_segments


def test_program_pol__the_step_trace_reads_the_steps_hyper_row():
    demo, result = _task("gpt")
    first = step_trace(demo.graph, demo.task, demo.dataset, result.checkpoints[0].params, 0)
    hyper = demo.graph.program.leaf("hyper")
    assert torch.equal(first.trace[hyper], demo.graph.hyper[0])
    later = step_trace(demo.graph, demo.task, demo.dataset, result.checkpoints[1].params, 3)
    assert not torch.equal(later.trace[hyper], first.trace[hyper])  # warm-up then cosine


def test_program_pol__an_optimizer_the_program_was_not_captured_with_is_refused():
    demo, _ = _task("cnn")
    with pytest.raises(GraphError, match="hyper-parameters"):
        ProgramTraining(demo.graph.program, OptimizerConfig("adam", 1e-3), 4, 0)
    with pytest.raises(GraphError, match="buffers"):
        ProgramTraining(demo.graph.program, OptimizerConfig("sgd", 0.1), 4, 0)


# ------------------------------------------------------------------------------------- the task spec


def test_program_task__spec_commits_the_whole_optimizer_and_the_hyper_root():
    demo, _ = _task("gpt")
    task = demo.task
    assert task.hyper_root == demo.graph.hyper_root
    assert TrainingTask.from_bytes(task.to_bytes()) == task
    obj = task.to_dict()
    assert obj["optimizer"]["name"] == "adamw" and obj["optimizer"]["warmup_steps"] == 2
    other = dataclasses.replace(task, optimizer=dataclasses.replace(task.optimizer, warmup_steps=3))
    assert other.hash() != task.hash()
    # on chain the graph field binds the program (descriptors and outputs) and the hyper table
    program = demo.graph.program
    assert task.graph_root == program.root == keccak256(program.nodes_root + program.outputs_hash)
    assert task.commitments()[1] == task.committed_graph_root == keccak256(task.graph_root + task.hyper_root)
    assert program.outputs_hash == keccak256(abi_encode(["uint256[]"], [list(program.outputs)]))
    assert dataclasses.replace(task, hyper_root=bytes(32)).commitments()[1] != task.commitments()[1]
    for broken, message in (({**obj, "optimizer": {"name": "adamw", "lr": obj["optimizer"]["lr"]}}, "optimizer"),
                            ({k: v for k, v in obj.items() if k != "hyper_root"}, r"missing field\(s\) \[.hyper_root.\]"),
                            ({**obj, "hyper_root": "0x12"}, "hyper_root")):
        with pytest.raises(TaskError, match=message):
            TrainingTask.from_dict(broken)


def _published(store, name: str):
    demo, _ = _task(name)
    bundle = program_task(demo.graph.program, demo.graph.optimizer, demo.weights, demo.dataset,
                          steps=demo.task.steps, k=demo.task.checkpoint_interval, seed=demo.task.seed, cid=store.add_bytes)
    return bundle, store.add_bytes(bundle.task.to_bytes())


def test_program_task__fetched_and_checked_then_refused_where_the_chain_cannot_judge_a_node(tmp_path):
    """The CNN's long reductions (convolution gradients over the batch's pixels) are linear: the
    game dissects them, so a worker takes the task; so is the byte-level GPT's (256-class rows, its
    loss and embedding gradients over 128 positions written as sums). A padded 1x1 convolution
    (not written as a matmul) over 32 channels of 32x32 images reads one element per channel, 4 KiB
    apart: 32 leaves, refused."""
    store = LocalStore(tmp_path / "ipfs")
    bundle, cid = _published(store, "cnn")
    program = bundle.graph.program
    grads = [n for n in program.nodes if n.op == "conv2d_grad_weight"]
    assert grads and all(len(R.element_inputs(n, [program.nodes[i] for i in n.inputs], 0)[0][1]) > 64 for n in grads)
    assert fetch_task(store, cid, bundle.task.hash()).task == bundle.task
    bundle, cid = _published(store, "gpt")
    loaded = load_task(store, cid, bundle.task.hash())
    assert loaded.graph.root == bundle.task.graph_root and loaded.weights.keys() == bundle.weights.keys()
    assert fetch_task(store, cid, bundle.task.hash()).task == bundle.task
    torch.manual_seed(0)
    pointwise = nn.Sequential(nn.Conv2d(1, 32, 1), nn.ReLU(), nn.Conv2d(32, 2, 1, padding=1), nn.Flatten(),
                              nn.Linear(2 * 34 * 34, 10))
    wide = export_program(pointwise, ExportConfig(2, (1, 32, 32)))
    weights = {name: p.detach().clone() for name, p in pointwise.named_parameters()}
    images = Dataset(torch.randn(8, 1024), torch.randint(0, 10, (8,)))
    task = program_task(wide, OptimizerConfig(), weights, images, steps=2, k=1, seed=1, cid=store.add_bytes)
    cid = store.add_bytes(task.task.to_bytes())
    with pytest.raises(UnjudgeableTask, match=r"node \d+ \(conv2d, from .*\) reads 32 elements of node \d+ spread over "
                                              r"32 leaves; the dispute game opens at most 16"):
        fetch_task(store, cid, task.task.hash())
    forged = dataclasses.replace(bundle.task, hyper_root=bytes(32))
    with pytest.raises(ArtifactMismatch, match="hyper_root"):
        load_task(store, store.add_bytes(forged.to_bytes()), forged.hash())


def test_mlp_preset__a_program_of_the_mlp_with_sgd_that_trains_like_the_module():
    """`dtm task post`'s model: the MLP module exported with plain SGD; hidden widths all kept."""
    from offchain.ml.exporter import mlp_preset
    from offchain.ml.models import MLP
    from offchain.ml.train import BatchSampler

    program, optimizer, initial = mlp_preset(64, (16, 8), 10, batch_size=8, lr=0.1)
    assert optimizer == OptimizerConfig("sgd", 0.1) and program.meta["optimizer"] == optimizer.to_dict()
    assert program.meta["model_kwargs"] == {"input_dim": 64, "hidden": [16, 8], "classes": 10}
    assert [program.state[i].shape for i in range(6)] == [(16, 64), (16,), (8, 16), (8,), (10, 8), (10,)]
    torch.manual_seed(0)
    module = MLP(64, (16, 8), 10)
    assert all(torch.equal(p, initial[n]) for n, p in module.named_parameters())  # seed 0, like `model export`
    data = digits_dataset()
    demo = program_task(program, OptimizerConfig("sgd", 0.1), initial, data, steps=4, k=2, seed=1)
    result = train(demo.task, demo.spec, demo.weights, data, graph=demo.graph)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    sampler = BatchSampler(1, 8, data)
    for step in range(4):
        x, y = sampler.batch(step)
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(x), y).backward()
        optimizer.step()
    final = result.final_params
    assert all(torch.allclose(p, final[n], atol=1e-6) for n, p in module.named_parameters())


def test_score__a_classifier_presets_program_scores_by_its_forward_pass_on_any_rows():
    """Accuracy and loss of a preset's program come from the preset's own forward pass, so a
    held-out split smaller than a batch scores too; a program naming any other model, or a preset
    whose parameters the program's do not match, falls back to the program's own loss."""
    from offchain.ml.exporter import mlp_preset
    from offchain.ml.models import MLP
    from offchain.workers.submitter import score

    program, _, state = mlp_preset(64, (16,), 10, batch_size=32, lr=0.1)
    training = ProgramTraining(program, OptimizerConfig("sgd", 0.1), 4, 1)
    rows = Dataset(digits_dataset().x[:5], digits_dataset().y[:5])
    torch.manual_seed(0)
    module = MLP(64, (16,), 10)
    with torch.no_grad():
        out = module(rows.x)
    got = score(training, state, rows)
    assert got.rows == 5 and got.accuracy == float((out.argmax(1) == rows.y).float().mean())
    assert got.loss == pytest.approx(float(nn.functional.cross_entropy(out, rows.y)), rel=1e-6)
    for meta in ({"model": "mymodel.py:MLP"}, {"model_kwargs": {"input_dim": 64, "hidden": [17], "classes": 10}},
                 {"model": "offchain.ml.models:Nope"}, {"model_kwargs": {"input_dim": -1}}):
        other = dataclasses.replace(program, meta={**program.meta, **meta})
        whole = Dataset(digits_dataset().x[:64], digits_dataset().y[:64])
        fallback = score(ProgramTraining(other, OptimizerConfig("sgd", 0.1), 4, 1), state, whole)
        assert fallback.accuracy is None and fallback.rows == 64, meta


@pytest.mark.parametrize("rows", [5, 8, 13])
def test_score__a_program_s_loss_is_the_mean_over_every_row_fewer_than_a_batch_or_a_remainder_too(rows):
    """Any other program scores by its own step's loss: whole batches, then the rows left over cycled
    through batches, each as often, so the score is the mean over the rows (here a regressor's
    squared error, which the plain module gives row by row)."""
    from offchain.ml.exporter import mlp_preset
    from offchain.ml.models import MLP
    from offchain.workers.submitter import score

    program, _, state = mlp_preset(3, (6,), 0, batch_size=8, lr=0.1, targets=1)
    x = torch.randn(rows, 4, generator=torch.Generator().manual_seed(rows))
    torch.manual_seed(0)
    module = MLP(3, (6,), 1)
    with torch.no_grad():
        per_row = (module(x[:, :3]) - x[:, 3:]).pow(2).reshape(-1)
    got = score(ProgramTraining(program, OptimizerConfig("sgd", 0.1), 4, 1), state, Dataset(x, torch.zeros(rows).long()))
    assert got.accuracy is None and got.rows == rows
    assert got.loss == pytest.approx(float(per_row.mean()), rel=1e-5)


def test_check_program_task__refuses_files_larger_than_workers_fetch(monkeypatch):
    """A task whose weights (each checkpoint as large) or data a worker would not fetch is refused
    before anything is uploaded, with the file and the limit named."""
    from offchain.ml.exporter import mlp_preset
    from offchain.workers import artifacts

    program, optimizer, weights = mlp_preset(64, (16,), 10, batch_size=8, lr=0.1)
    artifacts.check_program_task(program, optimizer, weights, digits_dataset(), steps=8, k=4, seed=1)
    monkeypatch.setattr(artifacts, "MAX_ARTIFACT_BYTES", 400_000)  # the digits: 474,552 bytes
    small = Dataset(digits_dataset().x[:100], digits_dataset().y[:100])
    artifacts.check_program_task(program, optimizer, weights, small, steps=8, k=4, seed=1)
    with pytest.raises(TaskError, match=r"^the dataset file is 474,552 bytes; workers fetch at most 400,000$"):
        artifacts.check_program_task(program, optimizer, weights, digits_dataset(), steps=8, k=4, seed=1)
    for limit, what in ((5_000, r"initial weights \(and each checkpoint\)"), (2_000, "model")):  # 5,144 and 2,808 bytes
        monkeypatch.setattr(artifacts, "MAX_ARTIFACT_BYTES", limit)
        with pytest.raises(TaskError, match=rf"^the {what} file is [\d,]+ bytes; workers fetch at most {limit:,}$"):
            artifacts.check_program_task(program, optimizer, weights, small, steps=8, k=4, seed=1)
