"""Cheating solver strategies, for tests, the detection benchmark and demos.

Each strategy returns what a cheater would publish (proof document + checkpoints, well-formed and
correctly committed) together with the ground truth of which segments are inconsistent with an
honest replay.  Only the *content* is wrong, never the format, which is what the verifier must catch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import numpy as np
import torch

from .artifacts import Dataset, synthetic_dataset
from .commit import checkpoint_root
from .demo import DemoTask
from .errors import MLError
from .program import execution_context
from .ops import OPS
from .program import Corruption
from .program_training import ProgramTraining
from .train import (
    BatchSampler,
    Checkpoint,
    ProofDocument,
    TrainingHooks,
    TrainingResult,
    build_proof,
    run_steps,
    step_trace,
    train,
    update_norm,
)

Params = list[torch.Tensor]
SegmentFn = Callable[[int, Params, Callable[[Params], Params]], Params]


@dataclass
class CheatRun:
    """A published (possibly dishonest) run and the ground truth about it."""

    kind: str
    result: TrainingResult
    proof: ProofDocument
    bad_segments: set[int] = field(default_factory=set)
    genuine: TrainingResult | None = None
    corruption: Corruption | None = None  # what the cheater's replays must repeat (`corrupted`)

    def checkpoint_blobs(self, demo: DemoTask) -> list[bytes]:
        return [checkpoint.to_bytes(demo.spec) for checkpoint in self.result.checkpoints]


def _segment_run(demo: DemoTask, segment_fn: SegmentFn, hooks: TrainingHooks | None = None) -> TrainingResult:
    """Training loop where ``segment_fn(j, params, honest)`` decides how segment ``j`` ends."""
    task, names = demo.task, demo.spec.param_names
    executor = demo.graph.executor()
    sampler = BatchSampler(task.seed, task.batch_size, demo.dataset)
    interval = task.checkpoint_interval
    params = [demo.weights[n].clone() for n in names]
    state = dict(zip(names, params))
    checkpoints = [Checkpoint(0, 0, state, checkpoint_root(state, names))]
    norms: list[float] = []
    losses: list[torch.Tensor] = []
    with execution_context(1):
        for segment in range(task.num_segments):
            def honest(start: Params, segment: int = segment) -> Params:
                return run_steps(executor, start, sampler, segment * interval, interval, hooks, losses)

            params = segment_fn(segment, params, honest)
            new_state = dict(zip(names, params))
            norms.append(update_norm(state, new_state))
            checkpoints.append(Checkpoint(segment + 1, (segment + 1) * interval, new_state,
                                          checkpoint_root(new_state, names)))
            state = new_state
    mean_losses = torch.stack(losses).mean(1).tolist() if losses else [0.0]
    if len(mean_losses) < task.steps:  # skipped work has no loss; pad with the last value seen
        mean_losses = mean_losses + [mean_losses[-1]] * (task.steps - len(mean_losses))
    return TrainingResult(checkpoints, mean_losses, norms)


def _publish(kind: str, demo: DemoTask, result: TrainingResult, bad: Iterable[int],
             genuine: TrainingResult | None = None, corruption: Corruption | None = None) -> CheatRun:
    return CheatRun(kind, result, build_proof(demo.task, result), set(bad), genuine, corruption)


def honest_run(demo: DemoTask) -> CheatRun:
    """The reference: an honest solver."""
    result = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph)
    return _publish("honest", demo, result, ())


def skip_steps(demo: DemoTask, every: int = 2) -> CheatRun:
    """Do only one of every ``every`` steps (saves ``1 - 1/every`` of the compute)."""
    if every < 2:
        raise MLError("every must be >= 2")
    hooks = TrainingHooks(skip_step=lambda step: step % every != 0)
    result = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph, hooks=hooks)
    interval = demo.task.checkpoint_interval
    bad = {s // interval for s in range(demo.task.steps) if s % every != 0}
    return _publish(f"skip-1-of-{every}", demo, result, bad)


def fabricate_segments(
    demo: DemoTask, segments: Iterable[int], mode: str = "stall", seed: int = 0
) -> CheatRun:
    """Invent the end checkpoint of each listed segment instead of training it.

    ``stall``: publish the start state again (no work, smallest possible update norm).
    ``noise``: start state + Gaussian noise whose norm mimics the previous honest update.
    Training continues honestly from the invented state, so only the listed segments are bad.
    """
    targets = set(segments)
    if mode not in ("stall", "noise"):
        raise MLError(f"unknown fabrication mode {mode!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    last_norm = [1e-2]

    def segment_fn(segment: int, params: Params, honest: Callable[[Params], Params]) -> Params:
        if segment not in targets:
            new = honest(params)
            last_norm[0] = update_norm(dict(enumerate(params)), dict(enumerate(new))) or last_norm[0]
            return new
        if mode == "stall":
            return [p.clone() for p in params]
        noise = [torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32)) for p in params]
        scale = last_norm[0] / max(float(torch.sqrt(sum((n.double() ** 2).sum() for n in noise))), 1e-30)
        return [p + scale * n for p, n in zip(params, noise)]

    result = _segment_run(demo, segment_fn)
    return _publish(f"fabricate-{mode}", demo, result, targets)


def fabricate_fraction(demo: DemoTask, fraction: float, mode: str = "stall", seed: int = 0) -> CheatRun:
    """Fabricate ``ceil(fraction x segments)`` segments chosen at random by the cheater."""
    n = demo.task.num_segments
    count = max(1, int(np.ceil(fraction * n)))
    chosen = np.random.Generator(np.random.PCG64(seed)).choice(n, size=count, replace=False)
    return fabricate_segments(demo, (int(j) for j in chosen), mode, seed)


def wrong_data(demo: DemoTask, mode: str = "seed") -> CheatRun:
    """Train on other batches: ``seed`` uses another batch seed, ``dataset`` another dataset."""
    task = demo.task
    if mode == "seed":
        other = BatchSampler(task.seed ^ 1, task.batch_size, demo.dataset)
        hooks = TrainingHooks(batch=other.batch)
    elif mode == "dataset":
        fake: Dataset = synthetic_dataset(demo.dataset.n_rows, demo.dataset.input_dim,
                                          int(demo.dataset.y.max()) + 1, seed=12345)
        hooks = TrainingHooks(batch=BatchSampler(task.seed, task.batch_size, fake).batch)
    else:
        raise MLError(f"unknown wrong-data mode {mode!r}")
    result = train(task, demo.spec, demo.weights, demo.dataset, graph=demo.graph, hooks=hooks)
    return _publish(f"wrong-data-{mode}", demo, result, range(task.num_segments))


def forced_error(
    demo: DemoTask, segment: int | None = None, magnitude: float = 1e-3, seed: int = 0,
    genuine: TrainingResult | None = None,
) -> CheatRun:
    """Deliberately corrupt one segment (Truebit-style forced error); keep the genuine run.

    By default the corrupted segment is the one with the largest honest update norm, so it is in
    the top-Q set of every verifier that follows the policy, and the relative perturbation
    ``magnitude`` is far above any honest threshold yet too small to change the norm profile:
    the proof looks exactly like an honest one.  ``genuine`` is the honest run, whose final
    weights the submitter still receives: trained here unless the caller has it (a solver has).
    """
    if genuine is None:
        genuine = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph)
    if segment is None:
        segment = int(np.argmax(genuine.update_norms))
    rng = np.random.Generator(np.random.PCG64(seed))

    def segment_fn(j: int, params: Params, honest: Callable[[Params], Params]) -> Params:
        new = honest(params)
        if j != segment:
            return new
        noise = [torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32)) for p in new]
        norm = float(torch.sqrt(sum((p.double() ** 2).sum() for p in new)))
        noise_norm = float(torch.sqrt(sum((n.double() ** 2).sum() for n in noise)))
        return [p + (magnitude * norm / noise_norm) * n for p, n in zip(new, noise)]

    result = _segment_run(demo, segment_fn)
    return _publish("forced-error", demo, result, {segment}, genuine)


#: ops whose outputs a matmul-like kernel computes, the nodes ``corrupt_element`` picks from
MATMULS = ("mm", "addmm", "bmm", "conv2d", "conv2d_grad_weight")


def corrupted(demo: DemoTask, corruption: Corruption) -> DemoTask:
    """Program task ``demo`` whose training, replays, state roots and traces all repeat
    ``corruption``: what the cheater trains with and defends with."""
    return replace(demo, graph=demo.graph.corrupted(corruption))


def corrupt_element(demo: DemoTask, segment: int | None = None, node: int | None = None,
                    delta: float = 1.0, op: str | None = None) -> CheatRun:
    """Add ``delta`` to one element of one mid-network node at the first step of ``segment`` and
    train honestly on from there, so every checkpoint is consistent with the corruption and only
    that element of that step's trace is wrong: a dispute can only end in ``prove_element``.

    By default ``segment`` has the largest honest update norm (every verifier following the policy
    replays the top published one; the wrong element adds to this segment's update, so in practice
    it stays on top) and ``node`` is the last of the program's matmul-like nodes with the longest
    reduction per element (the most work to check: where a reduction is longer than the judge's,
    the dispute must go inside it), or with ``op`` the program's last node of that op; the
    element is the node's largest in magnitude at that step.  ``corruption`` is kept so the
    cheater can defend.
    """
    if not isinstance(demo.graph, ProgramTraining):
        raise MLError("only a program task's nodes can be corrupted")
    genuine = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph)
    if segment is None:
        segment = int(np.argmax(genuine.update_norms))
    if node is None and op is not None:
        ops = [n.id for n in demo.graph.program.nodes if n.op == op]
        if not ops:
            raise MLError(f"the program has no {op} node to corrupt")
        node = ops[-1]
    if node is None:
        program = demo.graph.program

        def per_element(n) -> int:  # FLOPs per output element: two per term of its reduction
            return OPS[n.op].flops(n, [program.nodes[i] for i in n.inputs]) // n.numel

        node = max((n for n in program.nodes if n.op in MATMULS), key=lambda n: (per_element(n), n.id)).id
    step = segment * demo.task.checkpoint_interval
    honest = step_trace(demo.graph, demo.task, demo.dataset, genuine.checkpoints[segment].params, step)
    corruption = Corruption(step, node, int(honest.trace[node].abs().argmax()), delta)
    bad = corrupted(demo, corruption)
    result = train(bad.task, bad.spec, bad.weights, bad.dataset, graph=bad.graph)
    return _publish("corrupt-element", demo, result, {segment}, genuine, corruption)
