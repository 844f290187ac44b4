"""Proof-of-learning training: derived batches, checkpoints every k steps, resumable, and the proof document.

Batch row ``i`` of step ``s`` is ``uint256(keccak256(abi.encode(uint256 seed, uint256 s, uint256 i))) % n_rows``
so neither the solver nor anyone else can choose the data, and the chain can check one row.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .artifacts import Dataset, all_finite, weights_from_bytes, weights_to_bytes, write_weights
from .commit import checkpoint_root, hashing_threads, keccak256, keccak256_with_prefix, proof_root, uint256
from .errors import ProofError, TrainingError
from .program import StepOutput, execution_context
from .program_training import ProgramStepper, ProgramTraining
from .strict_json import canonical_json, check_keys, parse_json_object, strict_int
from .task import TrainingTask, hex32, parse_hex32

PROOF_FORMAT = "dtm-proof/1"
BOOKS_AHEAD = 2  # checkpoints whose bookkeeping may trail the training (memory: one state each)
MAX_PROOF_BYTES = 64 * 1024 * 1024


def batch_indices(seed: int, step: int, batch_size: int, n_rows: int) -> list[int]:
    """``[keccak256(abi.encode(seed, step, i)) % n_rows for i in range(batch_size)]``."""
    prefix = uint256(seed) + uint256(step)
    return [int.from_bytes(keccak256(prefix + uint256(i)), "big") % n_rows for i in range(batch_size)]


class BatchSampler:
    """Fast batch derivation for one task (precomputed abi words, one keccak per row)."""

    def __init__(self, seed: int, batch_size: int, dataset: Dataset) -> None:
        self.seed_word = uint256(seed)
        self.row_words = [uint256(i) for i in range(batch_size)]
        self.dataset = dataset
        self.n_rows = dataset.n_rows

    def indices(self, step: int) -> list[int]:
        digests = keccak256_with_prefix(self.seed_word + step.to_bytes(32, "big"), self.row_words)
        n_rows = self.n_rows
        return [int.from_bytes(digest, "big") % n_rows for digest in digests]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(np.array(self.indices(step), dtype=np.int64))
        return self.dataset.x.index_select(0, index), self.dataset.y.index_select(0, index)


#: states at least this large have their bookkeeping (roots, norms) on a thread beside the work;
#: smaller ones are hashed in Python-bound calls that would only contend for the interpreter lock
OVERLAP_BYTES = 1 << 20


@dataclass
class Checkpoint:
    """Parameters after ``step`` steps (``step = index * k``) and their checkpoint root."""

    index: int
    step: int
    params: dict[str, torch.Tensor]
    root: bytes
    losses: list[float] = field(default_factory=list)  # mean loss of each step of the segment it ends

    def to_bytes(self, spec: ProgramTraining) -> bytes:
        return weights_to_bytes(self.params, spec)

    def write(self, path: str | os.PathLike[str], spec: ProgramTraining) -> None:
        """:meth:`to_bytes` written to ``path`` straight from the tensors (no copy of the state)."""
        write_weights(path, self.params, spec)

    @classmethod
    def from_bytes(cls, data: bytes, spec: ProgramTraining, index: int, interval: int) -> Checkpoint:
        params = weights_from_bytes(data, spec)
        return cls(index, index * interval, params, checkpoint_root(params, spec.param_names))


@dataclass
class TrainingResult:
    """Checkpoints (starting one included), per-step mean losses, per-segment update norms."""

    checkpoints: list[Checkpoint]
    losses: list[float]
    update_norms: list[float]
    first_step: int = 0

    @property
    def final_params(self) -> dict[str, torch.Tensor]:
        return self.checkpoints[-1].params

    @property
    def roots(self) -> list[bytes]:
        return [checkpoint.root for checkpoint in self.checkpoints]


@dataclass
class TrainingHooks:
    """Deviations from honest training, used only by cheat simulations (see cheats.py)."""

    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None
    skip_step: Callable[[int], bool] | None = None


#: Elements per float64 pass of a norm (512 KiB): what a norm holds at once stays small whatever the model
#: (a bookkeeping thread's transient memory is not shared with the training thread's heap).
NORM_CHUNK = 1 << 16


def squared_distance(a: torch.Tensor, b: torch.Tensor, *, norm: bool = True) -> tuple[float, float]:
    """``(Σ (a − b)², Σ b²)`` over every element (``Σ b²`` only if ``norm``), squares summed in
    float64 a chunk at a time. The difference is taken in float32: exact wherever the two are
    within a factor of two of each other (Sterbenz), as a replay and its commitment are, and
    within one float32 rounding elsewhere."""
    a, b = a.reshape(-1), b.reshape(-1)
    narrow = torch.empty(min(NORM_CHUNK, b.numel()), dtype=a.dtype)
    wide = torch.empty(narrow.numel(), dtype=torch.float64)
    diff = total = 0.0
    for start in range(0, b.numel(), NORM_CHUNK):
        n = min(NORM_CHUNK, b.numel() - start)
        delta = wide[:n].copy_(torch.sub(a[start:start + n], b[start:start + n], out=narrow[:n]))
        diff += float(torch.dot(delta, delta))
        if norm:
            reference = wide[:n].copy_(b[start:start + n])
            total += float(torch.dot(reference, reference))
    return diff, total


def update_norm(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]) -> float:
    """L2 norm of the whole-parameter update ``after - before`` (float64 accumulation)."""
    return math.sqrt(sum(squared_distance(tensor, before[name], norm=False)[0] for name, tensor in after.items()))


def _as_list(params: Mapping[str, torch.Tensor], names: Sequence[str]) -> list[torch.Tensor]:
    return [params[name].contiguous() for name in names]


def run_steps(
    executor: ProgramStepper,
    params: list[torch.Tensor],
    sampler: BatchSampler,
    first_step: int,
    count: int,
    hooks: TrainingHooks | None = None,
    losses: list[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Apply steps ``first_step .. first_step+count-1``; appends per-row losses if asked."""
    batch = hooks.batch if hooks is not None and hooks.batch is not None else sampler.batch
    skip = hooks.skip_step if hooks is not None else None
    run = executor.run
    own = False  # whether params are this loop's own outputs, which nothing else reads
    for step in range(first_step, first_step + count):
        if skip is not None and skip(step):
            continue
        x_batch, y_batch = batch(step)
        output = run(params, x_batch, y_batch, step=step, consume=own)
        params, own = output.params, True
        if losses is not None:
            losses.append(output.loss_rows)
    return params


def train(
    task: TrainingTask,
    spec: ProgramTraining,
    initial_params: Mapping[str, torch.Tensor],
    dataset: Dataset,
    *,
    graph: ProgramTraining | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    resume_from: Checkpoint | None = None,
    num_threads: int | None = 1,
    hooks: TrainingHooks | None = None,
    keep_params: bool = True,
) -> TrainingResult:
    """Train ``task.steps`` steps of the bound program ``spec`` (or ``graph``: the same program as a
    cheat runs it), checkpointing every ``k`` steps.

    ``on_checkpoint`` is called for every new checkpoint (step 0 included on a fresh run) so the
    caller can persist/upload it: in order, on a bookkeeping thread that hashes, measures and hands
    over checkpoint ``j`` while segment ``j + 1`` trains (on the training thread between segments
    for a state under ``OVERLAP_BYTES``); an exception it raises ends the training. ``resume_from``
    continues from any checkpoint and reproduces bitwise the checkpoints of an uninterrupted run.
    With ``keep_params=False`` only the first and last checkpoints keep their tensors (memory stays
    flat on long runs).
    """
    graph = graph or spec
    if graph.batch_size != task.batch_size or graph.param_names != spec.param_names:
        raise TrainingError("graph does not match task/spec")
    if dataset.n_rows != task.dataset_rows or dataset.input_dim != spec.input_dim:
        raise TrainingError("dataset does not match task/spec")
    interval = task.checkpoint_interval
    names = spec.param_names
    if resume_from is None:
        # the caller's tensors, not copies (no step writes a tensor it reads); its root and hook
        # are booked first, while the first segment trains
        start = Checkpoint(0, 0, {n: initial_params[n] for n in names}, b"")
    else:
        if not 0 <= resume_from.index < task.num_checkpoints or resume_from.step != resume_from.index * interval:
            raise TrainingError(f"cannot resume from checkpoint {resume_from.index}")
        start = resume_from
    executor = graph.executor()
    sampler = BatchSampler(task.seed, task.batch_size, dataset)
    checkpoints = [start]
    norms: list[float] = []
    loss_rows: list[torch.Tensor] = []
    params = _as_list(start.params, names)
    previous = [start.params]

    failed = []

    def book_start() -> None:
        try:
            with hashing_threads(1):
                start.root = checkpoint_root(start.params, names)
            if on_checkpoint is not None:
                on_checkpoint(start)
        except BaseException:
            failed.append(0)
            raise

    def book(index: int, state: dict[str, torch.Tensor], segment_losses: list[float]) -> None:
        """Root, update norm and the caller's hook of one checkpoint (steps never write a tensor
        they read, so the next segment trains on meanwhile); nothing after a hook that raised."""
        if failed:
            return
        try:
            # the other cores train the next segment; after the last one nothing trains
            with hashing_threads(1 if index < task.num_checkpoints - 1 else os.cpu_count() or 1):
                root = checkpoint_root(state, names)
            checkpoint = Checkpoint(index, index * interval, state, root, segment_losses)
            norms.append(update_norm(previous[0], state))
            previous[0] = state
            if on_checkpoint is not None:
                on_checkpoint(checkpoint)
        except BaseException:
            failed.append(index)
            raise
        if not keep_params and len(checkpoints) > 1:
            checkpoints[-1].params = {}
        checkpoints.append(checkpoint)

    segment_start = 0
    # a small state's bookkeeping is Python-bound: beside training it would only contend for the GIL
    overlap = sum(t.numel() * t.element_size() for t in params) >= OVERLAP_BYTES
    with execution_context(num_threads), ThreadPoolExecutor(1, thread_name_prefix="checkpoint") as bookkeeper:
        pending: list[Future] = []

        def schedule(booking: Callable[..., None], *args) -> None:
            if overlap:
                pending.append(bookkeeper.submit(booking, *args))
            else:
                booking(*args)

        if resume_from is None:
            schedule(book_start)
        for index in range(start.index + 1, task.num_checkpoints):
            params = run_steps(executor, params, sampler, (index - 1) * interval, interval, hooks, loss_rows)
            if not all(all_finite(t) for t in params):
                raise TrainingError(f"non-finite parameters at step {index * interval}")
            done = len(loss_rows) - segment_start
            segment_losses = torch.stack(loss_rows[segment_start:]).mean(1).tolist() if done else []
            segment_start = len(loss_rows)
            schedule(book, index, dict(zip(names, params)), segment_losses)
            while len(pending) > 1 and (pending[0].done() or len(pending) > BOOKS_AHEAD):
                pending.pop(0).result()  # in order; raises what the hook raised
        for future in pending:
            future.result()
    losses = torch.stack(loss_rows).mean(1).tolist() if loss_rows else []
    return TrainingResult(checkpoints, losses, norms, start.step)


def replay(
    graph: ProgramTraining,
    task: TrainingTask,
    dataset: Dataset,
    params: Mapping[str, torch.Tensor],
    first_step: int,
    count: int,
    *,
    num_threads: int | None = 1,
    precision: str = "float32",
) -> dict[str, torch.Tensor]:
    """Re-run ``count`` honest steps from ``params`` (the verifier's replay primitive);
    ``precision``: an honest variant execution (`ProgramExecutor`)."""
    executor = graph.executor(precision)
    sampler = BatchSampler(task.seed, task.batch_size, dataset)
    with execution_context(num_threads):
        result = run_steps(executor, _as_list(params, graph.param_names), sampler, first_step, count)
    return dict(zip(graph.param_names, result))


def segment_state_roots(
    graph: ProgramTraining,
    task: TrainingTask,
    dataset: Dataset,
    params: Mapping[str, torch.Tensor],
    segment: int,
    *,
    num_threads: int | None = 1,
) -> list[bytes]:
    """The ``k + 1`` state roots inside segment ``segment`` (dispute move 2), endpoints included."""
    names = graph.param_names
    executor = graph.executor()
    sampler = BatchSampler(task.seed, task.batch_size, dataset)
    current = _as_list(params, names)
    roots = [checkpoint_root(dict(zip(names, current)), names)]
    with execution_context(num_threads):
        for step in range(segment * task.checkpoint_interval, (segment + 1) * task.checkpoint_interval):
            current = run_steps(executor, current, sampler, step, 1)
            roots.append(checkpoint_root(dict(zip(names, current)), names))
    return roots


def step_trace(
    graph: ProgramTraining,
    task: TrainingTask,
    dataset: Dataset,
    params: Mapping[str, torch.Tensor],
    step: int,
    *,
    num_threads: int | None = 1,
    on_node: Callable[[int, torch.Tensor], None] | None = None,
) -> StepOutput:
    """Every node output of step ``step`` from the state before it (dispute move 4): kept in the
    result, or given to ``on_node(node, output)`` as it is computed and then freed."""
    executor = graph.executor()
    sampler = BatchSampler(task.seed, task.batch_size, dataset)
    x_batch, y_batch = sampler.batch(step)
    with execution_context(num_threads):
        return executor.run(_as_list(params, graph.param_names), x_batch, y_batch, keep_trace=on_node is None,
                            step=step, on_node=on_node)


# --------------------------------------------------------------------------------------------
# Proof document


@dataclass(frozen=True)
class ProofDocument:
    """What a solver publishes: checkpoint roots (and CIDs) every ``k`` steps; (root, count) go on chain."""

    task_hash: bytes
    checkpoint_interval: int
    steps: int
    checkpoint_roots: tuple[bytes, ...]
    checkpoint_cids: tuple[str, ...]
    update_norms: tuple[float, ...]
    final_loss: float

    def __post_init__(self) -> None:
        if len(self.task_hash) != 32:
            raise ProofError("task_hash must be 32 bytes")
        strict_int(self.checkpoint_interval, "checkpoint_interval", 1, 1 << 32, ProofError)
        strict_int(self.steps, "steps", 1, 1 << 32, ProofError)
        if self.steps % self.checkpoint_interval:
            raise ProofError("steps must be a multiple of checkpoint_interval")
        count = self.steps // self.checkpoint_interval + 1
        if len(self.checkpoint_roots) != count:
            raise ProofError(f"expected {count} checkpoint roots, got {len(self.checkpoint_roots)}")
        if any(not isinstance(r, bytes) or len(r) != 32 for r in self.checkpoint_roots):
            raise ProofError("checkpoint roots must be 32 bytes each")
        if len(self.checkpoint_cids) != count or not all(isinstance(c, str) and len(c) <= 256 for c in self.checkpoint_cids):
            raise ProofError(f"expected {count} checkpoint CIDs (strings)")
        if len(self.update_norms) != count - 1:
            raise ProofError(f"expected {count - 1} update norms")
        for value in (*self.update_norms, self.final_loss):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ProofError("update norms and final_loss must be finite numbers")

    @property
    def root(self) -> bytes:
        """Merkle root over the checkpoint roots (stored on chain with ``count``)."""
        return proof_root(list(self.checkpoint_roots))

    @property
    def count(self) -> int:
        return len(self.checkpoint_roots)

    @property
    def num_segments(self) -> int:
        return self.count - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROOF_FORMAT,
            "task_hash": hex32(self.task_hash),
            "checkpoint_interval": self.checkpoint_interval,
            "steps": self.steps,
            "checkpoint_roots": [hex32(r) for r in self.checkpoint_roots],
            "checkpoint_cids": list(self.checkpoint_cids),
            "update_norms": [float(v) for v in self.update_norms],
            "final_loss": float(self.final_loss),
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def with_cids(self, cids: Sequence[str]) -> ProofDocument:
        return ProofDocument(self.task_hash, self.checkpoint_interval, self.steps, self.checkpoint_roots,
                             tuple(cids), self.update_norms, self.final_loss)

    @classmethod
    def from_bytes(cls, data: bytes) -> ProofDocument:
        obj = parse_json_object(data, "proof document", MAX_PROOF_BYTES, ProofError)
        check_keys(obj, {"format", "task_hash", "checkpoint_interval", "steps", "checkpoint_roots",
                         "checkpoint_cids", "update_norms", "final_loss"}, "proof document", ProofError)
        if obj["format"] != PROOF_FORMAT:
            raise ProofError(f"proof format must be {PROOF_FORMAT!r}")
        for key in ("checkpoint_roots", "checkpoint_cids", "update_norms"):
            if not isinstance(obj[key], list):
                raise ProofError(f"{key} must be a list")
        try:
            roots = tuple(parse_hex32(r, "checkpoint root") for r in obj["checkpoint_roots"])
            task_hash = parse_hex32(obj["task_hash"], "task_hash")
        except ValueError as exc:
            raise ProofError(str(exc)) from exc
        document = cls(task_hash, obj["checkpoint_interval"], obj["steps"], roots,
                       tuple(obj["checkpoint_cids"]), tuple(obj["update_norms"]), obj["final_loss"])
        if bytes(data) != document.to_bytes():
            raise ProofError("proof document is not in canonical form")
        return document


def build_proof(task: TrainingTask, result: TrainingResult, cids: Sequence[str] | None = None) -> ProofDocument:
    """Proof document for a complete run; ``final_loss`` = mean loss over the last segment's steps."""
    if result.first_step != 0 or len(result.checkpoints) != task.num_checkpoints:
        raise ProofError("a proof needs the checkpoints of the whole run (merge resumed results first)")
    tail = result.losses[-task.checkpoint_interval:]
    final_loss = sum(tail) / len(tail)
    cids = tuple(cids) if cids is not None else ("",) * task.num_checkpoints
    return ProofDocument(task.hash(), task.checkpoint_interval, task.steps, tuple(result.roots), cids,
                         tuple(result.update_norms), final_loss)


def merge_results(first: TrainingResult, resumed: TrainingResult) -> TrainingResult:
    """Join a run interrupted after checkpoint j with its resumption from checkpoint j."""
    j = resumed.checkpoints[0].index
    if first.checkpoints[j].root != resumed.checkpoints[0].root:
        raise TrainingError("resumed run does not start from the given run's checkpoint")
    steps_before = resumed.first_step - first.first_step
    return TrainingResult(
        first.checkpoints[: j + 1] + resumed.checkpoints[1:],
        first.losses[:steps_before] + resumed.losses,
        first.update_norms[:j] + resumed.update_norms,
        first.first_step,
    )


def task_hash_of(task_bytes: bytes) -> bytes:
    """keccak256 of canonical task bytes (what ``ProofDocument.task_hash`` must equal)."""
    return keccak256(task_bytes)
