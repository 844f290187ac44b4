"""Cross-hardware: a task trained on a CUDA GPU is verified, and defended, by a CPU challenger.

Runs only where CUDA is present (skipped elsewhere). The GPU run's checkpoints differ bitwise
from a CPU replay, so the verifier's distance threshold and the judge's error bounds must both
hold across hardware: the CPU verifier accepts the GPU proof of the MLP preset on the digits, and
every element of every node of a GPU step passes its program rule evaluated from the GPU's own
committed inputs, for the training programs of every family (MLP, CNN, GPT, dropout and a zoo of
other ops) and for the digits MLP at the largest batch a task may have (its long reductions
through their dissection).
"""

from __future__ import annotations

import functools
import random

import pytest
import torch

from offchain.dispute import program_rules as R
from offchain.ml import build_proof, checkpoint_root, digits_dataset, profile_threshold, verify
from offchain.ml.capture import ExportConfig
from offchain.ml.demo import mlp_task
from offchain.ml.models import CNN, GPT, MLP
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program import CapturedStep, ProgramExecutor, execution_context, step_key
from offchain.ml.train import BatchSampler, Checkpoint, TrainingResult, update_norm
from tests.judge.program_runs import FAMILIES, Run, flat, float64_kernel, gather

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _train_on(device: str, demo) -> TrainingResult:
    """The task's steps through the program executor, with every tensor on ``device``."""
    task, names = demo.task, demo.spec.param_names
    executor = ProgramExecutor(demo.graph.program)
    sampler = BatchSampler(task.seed, task.batch_size, demo.dataset)
    state = [demo.weights[n].to(device) for n in names]
    checkpoints = [Checkpoint(0, 0, dict(demo.weights), checkpoint_root(demo.weights, names))]
    losses, norms = [], []
    with execution_context(None):
        for step in range(task.steps):
            x, y = sampler.batch(step)
            out = executor.run(state, x.to(device), y.to(device), demo.graph.hyper[step].to(device),
                               rng=step_key(task.seed, step))
            state = out.state
            losses.append(float(out.loss))
            if (step + 1) % task.checkpoint_interval == 0:
                cpu = {n: t.detach().cpu().clone() for n, t in zip(names, state)}
                norms.append(update_norm(checkpoints[-1].params, cpu))
                index = (step + 1) // task.checkpoint_interval
                checkpoints.append(Checkpoint(index, step + 1, cpu, checkpoint_root(cpu, names)))
    return TrainingResult(checkpoints, losses, norms)


def _digits(**schedule):
    """The MLP preset's 64-32-10 program on the digits."""
    return mlp_task(64, (32,), 10, digits_dataset(), lr=0.1, seed=1, **schedule)


def test_gpu_proof__accepted_by_cpu_verifier():
    demo = _digits(steps=100, k=10, batch_size=32)
    gpu = _train_on("cuda", demo)
    proof = build_proof(demo.task, gpu)
    blobs = [c.to_bytes(demo.spec) for c in gpu.checkpoints]
    threshold = profile_threshold(demo.graph, demo.task, demo.spec, demo.dataset, demo.weights).value
    verdict = verify(demo.task, demo.spec, demo.dataset, proof, blobs, threshold, seed=7, graph=demo.graph,
                     stop_at_first=False)
    print(f"GPU proof: max CPU replay distance {max(verdict.distances.values()):.3e}, threshold {threshold:.3e}")
    assert verdict.accept, verdict.reason


# ----------------------------------------------------------------------------------- training programs

LARGE = {  # sizes where cuBLAS / cuDNN pick split-K, tensor-core-free FP32 and tree reductions
    # the digits MLP at the largest batch a task may have: weight and bias gradients of 4096 terms
    "mlp-large": (lambda: MLP(64, (32,), 10), ExportConfig(4096, (64,))),
    "cnn-large": (lambda: CNN(3, 32, 32, 10), ExportConfig(64, (3, 32, 32), optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))),
    "gpt-large": (lambda: GPT(64, 64, 128, 4, 2),
                  ExportConfig(32, (64,), loss="lm_cross_entropy", optimizer=OptimizerConfig("adamw", 3e-3, weight_decay=0.01, clip_norm=1.0))),
}
PROGRAMS = [*sorted(FAMILIES), *LARGE]


@functools.cache
def _program_run(name: str) -> Run:
    return Run(name, LARGE.get(name))


def check_program_step_on(device: str, name: str, sample: int = 24, worst: int = 8) -> dict:
    """Every node of one step run on ``device``: ``sample`` random elements and the ``worst``
    elements furthest from the float64 kernel on the device's own inputs each pass their program
    rule, evaluated from the device's committed inputs.  Returns counts for the report."""
    run = _program_run(name)
    trace = run.step(None, device, strict=False)
    flats = [flat(t) for t in trace]
    rng = random.Random(0)
    checked = differ = 0
    for node in run.nodes():
        ins = run.inputs(node)
        picks = set(range(node.numel)) if node.numel <= sample else set(rng.sample(range(node.numel), sample))
        if node.dtype == "f32" and node.op != "view":
            exact = float64_kernel(node, trace, round_to=None).reshape(-1)
            got = trace[node.id].double().reshape(-1)
            off = torch.nan_to_num((got - exact).abs(), nan=0.0, posinf=0.0) / (exact.abs() + 2.0 ** -100)
            picks |= set(off.topk(min(worst, node.numel)).indices.tolist())
            cpu = run.traces[1][node.id].reshape(-1)
            differ += int((trace[node.id].reshape(-1) != cpu).sum())
        for index in sorted(picks):
            values = gather(node, ins, flats, index)
            assert R.check(node, ins, index, values, int(flats[node.id][index])), \
                f"{device} node {node.id} ({node.op}) element {index} outside its rule"
            checked += 1
    return {"nodes": len(run.nodes()), "checked": checked, "differ_from_cpu": differ}


@pytest.mark.parametrize("name", PROGRAMS)
def test_gpu_program_step__every_element_checked_passes_its_rule_from_the_gpus_own_inputs(name):
    """The verifiable op set across hardware: each family's step on the GPU (cuBLAS, cuDNN with
    TF32 off, CUDA reductions) stays inside every program rule, the worst elements included."""
    report = check_program_step_on("cuda", name)
    print(f"{name}: {report}")
    assert report["checked"] > 0


@pytest.mark.parametrize("name", PROGRAMS)
def test_gpu_program_step__is_bitwise_reproducible_under_the_execution_context(name):
    """A GPU solver replays its own run bitwise (deterministic kernels, fixed cuBLAS workspace)."""
    run = _program_run(name)
    first, second = run.step(None, "cuda"), run.step(None, "cuda")
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("name", ["cnn", "dropout", "gpt-large"])
def test_gpu_captured_step__replays_the_executors_steps_bitwise(name):
    """`CapturedStep` (one CUDA graph per step) gives the executor's states bit for bit, dropout
    keys and schedule rows changing every step."""
    run = _program_run(name)
    hyper = run.hyper.cuda()
    on = [t.cuda() for t in (*run.state, run.x, run.y)]
    state, x, y = on[:-2], on[-2], on[-1]
    executor = ProgramExecutor(run.program)
    with execution_context(None):
        captured = CapturedStep(executor, state, x, y, hyper, rng=step_key(3, 0))
        eager = state
        for step in range(3):
            xs, hs = x.roll(step, 0), hyper * (1 - 0.1 * step)  # new inputs each step
            eager = executor.run(eager, xs, y, hs, rng=step_key(3, step)).state
            captured.run(xs, y, hs, rng=step_key(3, step))
            assert all(torch.equal(a, b) for a, b in zip(eager, captured.state)), step
