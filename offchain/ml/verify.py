"""Verifier: threshold profiling, segment selection, segment replay and the accept/challenge verdict.

The verdict here is a *trigger* for an on-chain challenge, not the final word: the chain decides
hardware-independently by narrowing the dispute down to one element of one node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from .artifacts import Dataset
from .commit import checkpoint_root, keccak256, uint256
from .errors import ArtifactError
from .graph import REDUCTION_CAP, TrainingGraph, compile_training_graph, execution_context
from .spec import ModelSpec
from .task import TrainingTask
from .train import Checkpoint, ProofDocument, replay, squared_distance, update_norm

#: Honest-distance multiplier applied to the largest profiled distance.
DEFAULT_SAFETY_FACTOR = 10.0
#: Lower bound on the threshold (relative L2), so bitwise-identical profiles never give 0.
MIN_THRESHOLD = 1e-6


def state_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Relative L2 distance ``||a - b|| / ||b||`` over all parameters (float64 accumulation)."""
    sums = [squared_distance(a[name], reference) for name, reference in b.items()]
    return math.sqrt(sum(d for d, _ in sums)) / max(math.sqrt(sum(n for _, n in sums)), 1e-30)


@dataclass(frozen=True)
class Threshold:
    """Profiled acceptance threshold and the honest distances it was derived from."""

    value: float
    max_observed: float
    safety_factor: float
    observations: tuple[tuple[int, str, float], ...]


def profile_threshold(
    graph: TrainingGraph,
    task: TrainingTask,
    spec: ModelSpec,
    dataset: Dataset,
    initial_params: Mapping[str, torch.Tensor],
    *,
    segments: int = 3,
    safety_factor: float = DEFAULT_SAFETY_FACTOR,
    floor: float = MIN_THRESHOLD,
    num_threads: int = 1,
) -> Threshold:
    """Estimate the honest endpoint distance on this machine by replaying perturbed executions.

    The verifier trains its *own* honest trajectory from the task's initial weights (so a solver
    cannot pick pathological start states) and, for each of the first ``segments`` segments,
    replays the segment under three honest-but-different executions: another thread count, blocked
    reductions (partial sums over blocks of ``REDUCTION_CAP // 4`` terms folded left to right: a
    different summation order), and per-node float64 rounded to float32.
    threshold = max(safety_factor x largest observed distance, floor).
    """
    interval = task.checkpoint_interval
    split = max(1, REDUCTION_CAP // 4)
    other_threads = num_threads + 1 if num_threads == 1 else num_threads - 1  # another honest split of work
    observations: list[tuple[int, str, float]] = []
    start = dict(initial_params)
    for segment in range(min(segments, task.num_segments)):
        first = segment * interval
        reference = replay(graph, task, dataset, start, first, interval, num_threads=num_threads)
        variants = {
            "threads": replay(graph, task, dataset, start, first, interval, num_threads=other_threads),
            "float64": replay(graph, task, dataset, start, first, interval, num_threads=num_threads, precision="float64"),
        }
        if graph.splits_reductions:
            variants["chunking"] = replay(graph, task, dataset, start, first, interval, num_threads=num_threads, split=split)
        with execution_context(num_threads):  # as in verify
            observations += [(segment, name, state_distance(endpoint, reference)) for name, endpoint in variants.items()]
        start = reference
    largest = max((distance for _, _, distance in observations), default=0.0)
    return Threshold(max(safety_factor * largest, floor), largest, safety_factor, tuple(observations))


@dataclass(frozen=True)
class VerificationPolicy:
    """How many segments to replay: ``replay_fraction`` of all, ``top_share`` of them by update norm."""

    replay_fraction: float = 0.25
    top_share: float = 0.12
    min_segments: int = 2

    def counts(self, n_segments: int) -> tuple[int, int]:
        """``(q_top, q_random)`` for a proof with ``n_segments`` segments."""
        budget = min(n_segments, max(self.min_segments, math.floor(self.replay_fraction * n_segments)))
        q_top = min(budget, max(1, round(self.top_share * budget)))
        return q_top, budget - q_top


    def within(self, n_segments: int, max_segments: int) -> VerificationPolicy:
        """This policy, or the largest sample of at most ``max_segments`` (at least one) when its
        own does not fit: a verifier short of time replays fewer segments rather than none."""
        q_top, q_random = self.counts(n_segments)
        if q_top + q_random <= max_segments:
            return self
        cap = max(1, max_segments)
        return VerificationPolicy(cap / n_segments, self.top_share, min(self.min_segments, cap))


DEFAULT_POLICY = VerificationPolicy()


def select_segments(norms: Sequence[float], q_top: int, q_random: int, seed: int) -> list[int]:
    """Top-``q_top`` segments by update norm, then ``q_random`` distinct others drawn from ``seed``.

    Random draw ``c`` = ``keccak256(abi.encode(uint256 seed, uint256 c)) % n``, skipping repeats.
    ``norms`` must be recomputed by the verifier from the fetched checkpoints, never taken from
    the proof document.
    """
    n = len(norms)
    ranked = sorted(range(n), key=lambda j: (-norms[j], j))
    chosen = ranked[: min(q_top, n)]
    taken = set(chosen)
    seed_word = uint256(seed)
    counter = 0
    wanted = min(n, len(chosen) + q_random)
    while len(chosen) < wanted:
        j = int.from_bytes(keccak256(seed_word + uint256(counter)), "big") % n
        counter += 1
        if j not in taken:
            taken.add(j)
            chosen.append(j)
    return chosen


def replay_segment(
    graph: TrainingGraph,
    task: TrainingTask,
    dataset: Dataset,
    start: Mapping[str, torch.Tensor],
    segment: int,
    *,
    num_threads: int = 1,
) -> dict[str, torch.Tensor]:
    """Replay the ``k`` steps of ``segment`` from the solver's checkpoint ``segment``."""
    interval = task.checkpoint_interval
    return replay(graph, task, dataset, start, segment * interval, interval, num_threads=num_threads)


@dataclass
class Verdict:
    """Accept, or the first failing segment to challenge (and why)."""

    accept: bool
    failing_segment: int | None = None
    reason: str = ""
    distances: dict[int, float] = field(default_factory=dict)
    selected: list[int] = field(default_factory=list)
    threshold: float = 0.0
    replayed_steps: int = 0


def verify(
    task: TrainingTask,
    spec: ModelSpec,
    dataset: Dataset,
    proof: ProofDocument,
    checkpoint_blobs: Sequence[bytes],
    threshold: float,
    seed: int,
    *,
    policy: VerificationPolicy = DEFAULT_POLICY,
    graph: TrainingGraph | None = None,
    num_threads: int = 1,
    stop_at_first: bool = True,
    on_segment: Callable[[int], None] | None = None,
) -> Verdict:
    """Check commitments, then replay the selected segments against the solver's checkpoints
    (`on_segment(n)` after the n-th replayed segment)."""
    if proof.task_hash != task.hash():
        return Verdict(False, None, "proof names a different task")
    if proof.checkpoint_interval != task.checkpoint_interval or proof.steps != task.steps:
        return Verdict(False, None, "proof schedule differs from the task")
    if graph is None:
        graph = compile_training_graph(spec, task.batch_size, task.lr)
    if graph.root != task.graph_root:
        return Verdict(False, None, "task graph_root does not match the compiled model spec")
    if dataset.n_rows != task.dataset_rows or dataset.root() != task.dataset_root:
        return Verdict(False, None, "dataset does not match the task's dataset_root")
    if len(checkpoint_blobs) != proof.count:
        return Verdict(False, None, f"expected {proof.count} checkpoints, got {len(checkpoint_blobs)}")

    # every check on the caller's thread count: a parallel kernel over a 64K-element norm chunk is
    # all wake-up cost, and on a busy machine it waits for a descheduled thread (25x slower)
    with execution_context(num_threads):
        checkpoints: list[Checkpoint] = []
        for index, blob in enumerate(checkpoint_blobs):
            segment = max(index - 1, 0)
            try:
                checkpoint = Checkpoint.from_bytes(blob, spec, index, task.checkpoint_interval)
            except ArtifactError as exc:
                return Verdict(False, segment, f"checkpoint {index} unreadable: {exc}")
            if checkpoint.root != proof.checkpoint_roots[index]:
                return Verdict(False, segment, f"checkpoint {index} bytes do not match its committed root")
            checkpoints.append(checkpoint)
        if checkpoints[0].root != task.weights_root:
            return Verdict(False, 0, "checkpoint 0 is not the task's initial weights")

        norms = [update_norm(a.params, b.params) for a, b in zip(checkpoints, checkpoints[1:])]
        q_top, q_random = policy.counts(len(norms))
        selected = select_segments(norms, q_top, q_random, seed)
        verdict = Verdict(True, selected=selected, threshold=threshold)
        for segment in selected:
            endpoint = replay_segment(graph, task, dataset, checkpoints[segment].params, segment,
                                      num_threads=num_threads)
            distance = state_distance(endpoint, checkpoints[segment + 1].params)
            verdict.distances[segment] = distance
            verdict.replayed_steps += task.checkpoint_interval
            if on_segment is not None:
                on_segment(len(verdict.distances))
            if not math.isfinite(distance) or distance > threshold:
                if verdict.accept:
                    verdict.accept = False
                    verdict.failing_segment = segment
                    verdict.reason = f"segment {segment}: distance {distance:.3e} > threshold {threshold:.3e}"
                if stop_at_first:
                    break
        return verdict


def check_checkpoint_roots(proof: ProofDocument, checkpoints: Sequence[Mapping[str, torch.Tensor]], order: Sequence[str]) -> list[int]:
    """Indices whose recomputed checkpoint root differs from the proof (empty when all match)."""
    return [j for j, state in enumerate(checkpoints) if checkpoint_root(state, order) != proof.checkpoint_roots[j]]


__all__ = [
    "DEFAULT_POLICY", "DEFAULT_SAFETY_FACTOR", "MIN_THRESHOLD", "Threshold", "Verdict",
    "VerificationPolicy", "check_checkpoint_roots", "profile_threshold", "replay_segment",
    "select_segments", "state_distance", "verify",
]
