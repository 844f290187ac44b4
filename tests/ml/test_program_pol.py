"""Proof of learning for training programs: a CNN on real digits with momentum SGD and a
transformer on real text with AdamW, warm-up + cosine and clipping train with checkpoints of their
whole state, resume bitwise, pass an honest verifier and fail a cheating one."""

from __future__ import annotations

import functools

import pytest
import torch

from offchain.ml import cheats
from offchain.ml.artifacts import digits_dataset, text_dataset
from offchain.ml.capture import ExportConfig, export_program
from offchain.ml.demo import program_task
from offchain.ml.errors import GraphError
from offchain.ml.models import CNN, GPT
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program_training import ProgramTraining
from offchain.ml.train import Checkpoint, build_proof, step_trace, train
from offchain.ml.verify import profile_threshold, verify

SEQ = 16


def _cnn():
    torch.manual_seed(0)
    model = CNN(1, 8, 8, 10, widths=(4, 8))
    optimizer = OptimizerConfig("sgd", 0.05, momentum=0.9)
    program = export_program(model, ExportConfig(16, (1, 8, 8), optimizer=optimizer))
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    return program_task(program, optimizer, weights, digits_dataset(), steps=12, k=3, seed=5)


def _gpt():
    torch.manual_seed(0)
    model = GPT(256, SEQ, 32, 2, 1)
    optimizer = OptimizerConfig("adamw", 3e-3, weight_decay=0.01, warmup_steps=2, schedule="cosine", clip_norm=1.0)
    program = export_program(model, ExportConfig(8, (SEQ,), loss="lm_cross_entropy", optimizer=optimizer))
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    return program_task(program, optimizer, weights, text_dataset(SEQ), steps=8, k=2, seed=9)


FAMILIES = {"cnn": _cnn, "gpt": _gpt}


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
