"""Verifier: threshold profiling, segment selection, segment replay and the accept/challenge verdict.

The verdict here is a *trigger* for an on-chain challenge, not the final word: the chain decides
hardware-independently by narrowing the dispute down to one element of one node.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import torch

from .artifacts import Dataset, weights_from_bytes
from .commit import checkpoint_root, hashing_threads, keccak256, uint256
from .errors import ArtifactError
from .program import execution_context
from .program_training import ProgramTraining
from .task import TrainingTask
from .train import OVERLAP_BYTES, ProofDocument, replay, squared_distance, update_norm

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
    graph: ProgramTraining,
    task: TrainingTask,
    spec: ProgramTraining,
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
    replays the segment under two honest-but-different executions: another thread count (another
    split of the reductions) and per-node float64 rounded to float32.
    threshold = max(safety_factor x largest observed distance, floor).
    """
    interval = task.checkpoint_interval
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


def random_draws(n: int, seed: int) -> Iterator[int]:
    """The random segment draws: ``keccak256(abi.encode(uint256 seed, uint256 c)) % n`` for c = 0, 1, …"""
    seed_word = uint256(seed)
    for counter in itertools.count():
        yield int.from_bytes(keccak256(seed_word + uint256(counter)), "big") % n


def select_segments(norms: Sequence[float], q_top: int, q_random: int, seed: int) -> list[int]:
    """Top-``q_top`` segments by update norm, then ``q_random`` distinct others drawn from ``seed``
    (`random_draws`, skipping repeats).

    ``norms`` must be recomputed by the verifier from the fetched checkpoints, never taken from
    the proof document.
    """
    n = len(norms)
    ranked = sorted(range(n), key=lambda j: (-norms[j], j))
    chosen = ranked[: min(q_top, n)]
    return chosen + _distinct_draws(n, seed, min(q_random, n - len(chosen)), skip=frozenset(chosen))


def _distinct_draws(n: int, seed: int, count: int, skip: frozenset[int] = frozenset()) -> list[int]:
    """The first ``count`` distinct draws of `random_draws` not in ``skip``."""
    drawn: list[int] = []
    draws = random_draws(n, seed)
    while len(drawn) < count:
        j = next(draws)
        if j not in skip and j not in drawn:
            drawn.append(j)
    return drawn


def replay_segment(
    graph: ProgramTraining,
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
    spec: ProgramTraining,
    dataset: Dataset,
    proof: ProofDocument,
    checkpoint_blobs: Sequence[bytes],
    threshold: float,
    seed: int,
    *,
    policy: VerificationPolicy = DEFAULT_POLICY,
    graph: ProgramTraining | None = None,
    num_threads: int = 1,
    stop_at_first: bool = True,
    on_segment: Callable[[int], None] | None = None,
) -> Verdict:
    """Check commitments, then replay the selected segments against the solver's checkpoints
    (`on_segment(n)` after the n-th replayed segment).

    The commitment checks (the dataset root, each checkpoint parsed and hashed, the update norms)
    run on a second core while the segments that are selected whatever the norms are replay: the
    first ``q_random`` distinct random draws, each selected as a random or as a top segment. The
    verdict is the one of checking first: a failed commitment wins over a replay."""
    if proof.task_hash != task.hash():
        return Verdict(False, None, "proof names a different task")
    if proof.checkpoint_interval != task.checkpoint_interval or proof.steps != task.steps:
        return Verdict(False, None, "proof schedule differs from the task")
    graph = graph or spec
    if graph.root != task.graph_root:
        return Verdict(False, None, "task graph_root does not match the model")
    if dataset.n_rows != task.dataset_rows:
        return Verdict(False, None, "dataset does not match the task's dataset_root")
    if len(checkpoint_blobs) != proof.count:
        return Verdict(False, None, f"expected {proof.count} checkpoints, got {len(checkpoint_blobs)}")

    n_segments = len(checkpoint_blobs) - 1
    q_top, q_random = policy.counts(n_segments)
    spare_cores = max(1, (os.cpu_count() or 1) - num_threads)

    states: dict[int, dict[str, torch.Tensor]] = {}  # the parsed checkpoints, in order
    unreadable: list[tuple[int, str]] = []

    def read_checkpoints() -> list[float] | None:
        """Parse every checkpoint (up to the first unreadable one) and measure the update norms."""
        for index, blob in enumerate(checkpoint_blobs):
            try:
                states[index] = weights_from_bytes(blob, spec)
            except ArtifactError as exc:
                unreadable.append((index, str(exc)))
                return None
        return [update_norm(states[j], states[j + 1]) for j in range(n_segments)]

    def check_roots() -> Verdict | None:
        """The first failing commitment, in the order of the checks (after `read_checkpoints`)."""
        if dataset.root() != task.dataset_root:
            return Verdict(False, None, "dataset does not match the task's dataset_root")
        for index in range(len(checkpoint_blobs)):
            if unreadable and unreadable[0][0] == index:
                return Verdict(False, max(index - 1, 0), f"checkpoint {index} unreadable: {unreadable[0][1]}")
            with hashing_threads(spare_cores):
                root = checkpoint_root(states[index], spec.param_names)
            if root != proof.checkpoint_roots[index]:
                return Verdict(False, max(index - 1, 0), f"checkpoint {index} bytes do not match its committed root")
        if proof.checkpoint_roots[0] != task.weights_root:
            return Verdict(False, 0, "checkpoint 0 is not the task's initial weights")
        return None

    distances: dict[int, float] = {}

    def distance(segment: int) -> float:
        """The replayed segment's distance to the solver's end state (from bytes that are being
        checked against their roots: ahead of the checks, parsed here)."""
        if segment not in distances:
            start, end = (states.get(j) or weights_from_bytes(checkpoint_blobs[j], spec) for j in (segment, segment + 1))
            endpoint = replay_segment(graph, task, dataset, start, segment, num_threads=num_threads)
            distances[segment] = state_distance(endpoint, end)
            if on_segment is not None:
                on_segment(len(distances))
        return distances[segment]

    # every check on the caller's thread count: a parallel kernel over a 64K-element norm chunk is
    # all wake-up cost, and on a busy machine it waits for a descheduled thread (25x slower)
    with execution_context(num_threads), ThreadPoolExecutor(1, thread_name_prefix="verify-checks") as checker:
        overlap = len(checkpoint_blobs[0]) >= OVERLAP_BYTES
        if not overlap:
            norms, failure = read_checkpoints(), check_roots()
            if failure is not None:
                return failure
        else:
            read, checked = checker.submit(read_checkpoints), checker.submit(check_roots)
            try:
                for segment in _distinct_draws(n_segments, seed, q_random):
                    if _fails(distance(segment), threshold) and stop_at_first:
                        break
            except ArtifactError:
                pass  # the checks name the unreadable checkpoint
            norms = read.result()
            if norms is None:
                return checked.result()

        selected = select_segments(norms, q_top, q_random, seed)
        verdict = Verdict(True, selected=selected, threshold=threshold)
        for segment in selected:
            verdict.distances[segment] = value = distance(segment)
            if _fails(value, threshold):
                if verdict.accept:
                    verdict.accept = False
                    verdict.failing_segment = segment
                    verdict.reason = f"segment {segment}: distance {value:.3e} > threshold {threshold:.3e}"
                if stop_at_first:
                    break
        if overlap and (failure := checked.result()) is not None:
            return failure
        verdict.replayed_steps = len(distances) * task.checkpoint_interval
        return verdict


def _fails(distance: float, threshold: float) -> bool:
    return not math.isfinite(distance) or distance > threshold


def check_checkpoint_roots(proof: ProofDocument, checkpoints: Sequence[Mapping[str, torch.Tensor]], order: Sequence[str]) -> list[int]:
    """Indices whose recomputed checkpoint root differs from the proof (empty when all match)."""
    return [j for j, state in enumerate(checkpoints) if checkpoint_root(state, order) != proof.checkpoint_roots[j]]


__all__ = [
    "DEFAULT_POLICY", "DEFAULT_SAFETY_FACTOR", "MIN_THRESHOLD", "Threshold", "Verdict",
    "VerificationPolicy", "check_checkpoint_roots", "profile_threshold", "replay_segment",
    "random_draws", "select_segments", "state_distance", "verify",
]
