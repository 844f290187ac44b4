"""Task bundles on IPFS: what a submitter publishes and every other role fetches and checks.

A task spec is trusted only through its keccak256, which the chain holds; every
artifact it names is then checked against the roots inside the spec. Nothing is
executed: the model is a declarative spec or a training program (data), tensors
come from safetensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from offchain.dispute.limits import UnjudgeableTask, check_judgeable, program_unjudgeable_reason
from offchain.distributed.group import SPEC_FORMAT, GroupError, GroupTask, group_task, spec_bytes, spec_from_json
from offchain.ml import (
    Checkpoint,
    Dataset,
    DemoTask,
    ProofDocument,
    TaskError,
    TrainingTask,
    checkpoint_root,
    weights_from_bytes,
)
from offchain.ml.demo import program_task
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program import MAX_PROGRAM_BYTES, Program
from offchain.ml.program_training import ProgramTraining
from offchain.storage import MAX_ARTIFACT_BYTES, ContentStore
from offchain.storage.importer import compute_cid

MAX_SPEC_BYTES = 64 * 1024


class ArtifactMismatch(ValueError):
    """Fetched content does not match the commitment that names it."""


@dataclass(frozen=True)
class PublishedTask:
    bundle: DemoTask
    spec_cid: str
    spec_bytes: bytes

    @property
    def spec_hash(self) -> bytes:
        return self.bundle.task.hash()

    def commitments(self) -> tuple:
        return self.bundle.task.commitments()

    @property
    def summary(self) -> str:
        return f"{self.bundle.task.steps} steps, k={self.bundle.task.checkpoint_interval}"


@dataclass(frozen=True)
class PublishedGroupTask:
    """A group task (docs/group-tasks.md §4.3) whose spec document is in the store: every worker
    derives its participants from it."""

    group: GroupTask
    spec_cid: str

    @property
    def spec_hash(self) -> bytes:
        return self.group.hash()

    def commitments(self) -> tuple:
        return self.group.commitments()

    @property
    def summary(self) -> str:
        spec = self.group.spec
        return (f"a group of {spec.stages} stage(s) x {spec.replicas} replica(s), {spec.steps} steps, "
                f"k={spec.checkpoint_interval}")


def publish_group_task(store: ContentStore, group: GroupTask) -> PublishedGroupTask:
    """Put a group task's spec document on IPFS (the group task `group_task` made of it), once
    the dispute game is known to judge it (`check_group_judgeable`)."""
    check_group_judgeable(group)
    return PublishedGroupTask(group, store.add_bytes(spec_bytes(group.spec)))


def check_group_judgeable(group: GroupTask) -> None:
    """Raise `UnjudgeableTask` naming the first participant whose step the dispute game could not
    judge. The replicas of a stage run one step program (their place in the mail and the order of
    the all-reduce's additions aside), so replica 0's participants stand for every replica."""
    for rank in range(group.spec.stages):
        reason = program_unjudgeable_reason(group.programs[rank], group.participants[rank], participant=True)
        if reason is not None:
            raise UnjudgeableTask(f"group participant {rank}: {reason}")


def check_program_task(program: Program, optimizer: OptimizerConfig, weights: dict[str, torch.Tensor],
                       dataset: Dataset, *, steps: int, k: int, seed: int) -> None:
    """Everything `publish_program_task` checks, with CIDs computed locally and nothing uploaded:
    that the data fits the program's input, that workers can fetch every file and that the dispute
    game can judge the task (`TaskError`, `UnjudgeableTask`)."""
    expected = program.nodes[program.leaf("data_x")].shape[1]
    if dataset.input_dim != expected:
        raise TaskError(f"the data has {dataset.input_dim} features a row; the program takes {expected}")
    _check(lambda cid: program_task(program, optimizer, weights, dataset, steps=steps, k=k, seed=seed, cid=cid))


def publish_program_task(store: ContentStore, program: Program, optimizer: OptimizerConfig,
                         weights: dict[str, torch.Tensor], dataset: Dataset, *, steps: int, k: int,
                         seed: int) -> PublishedTask:
    """Put a training program (`dtm model export`), its initial weights, the dataset and the task
    spec on IPFS. Nothing is uploaded unless the task passes `check_program_task`."""
    check_program_task(program, optimizer, weights, dataset, steps=steps, k=k, seed=seed)
    return _publish(store, lambda cid: program_task(program, optimizer, weights, dataset, steps=steps, k=k,
                                                    seed=seed, cid=cid))


def _check(build: Callable[[Callable[[bytes], str]], DemoTask]) -> None:
    """Build the task with CIDs computed here (nothing uploaded) and check that workers can fetch
    it (every file, a checkpoint as large as the initial weights) and the game can judge it."""
    draft = build(compute_cid)
    for what, data in (("model", draft.spec_bytes), ("initial weights (and each checkpoint)", draft.weights_bytes),
                       ("dataset", draft.dataset_bytes)):
        if len(data) > MAX_ARTIFACT_BYTES:
            raise TaskError(f"the {what} file is {len(data):,} bytes; workers fetch at most {MAX_ARTIFACT_BYTES:,}")
    check_judgeable(draft.graph, draft.task)


def _publish(store: ContentStore, build: Callable[[Callable[[bytes], str]], DemoTask]) -> PublishedTask:
    bundle = build(store.add_bytes)
    spec_bytes = bundle.task.to_bytes()
    return PublishedTask(bundle, store.add_bytes(spec_bytes), spec_bytes)


def fetch_any_task(store: ContentStore, spec_cid: str, spec_hash: bytes, *, timeout: float = 60.0
                   ) -> DemoTask | GroupTask:
    """A task (`fetch_task`), or a group task when its spec is a group's spec document: its
    participants derived from the spec here (`group_task`) and checked against the spec hash
    (docs/group-tasks.md §4.3)."""
    data = store.cat(spec_cid, max_size=MAX_SPEC_BYTES, timeout=timeout)
    if (doc := _group_spec(data)) is None:
        return fetch_task(store, spec_cid, spec_hash, timeout=timeout)
    try:
        group = group_task(spec_from_json(doc))
    except GroupError as exc:
        raise TaskError(str(exc)) from None
    if group.hash() != spec_hash:
        raise ArtifactMismatch(f"group spec {spec_cid} does not give the on-chain spec hash")
    check_group_judgeable(group)
    return group


def _group_spec(data: bytes) -> dict | None:
    """The group spec document ``data`` is, if it is one."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == SPEC_FORMAT else None


def fetch_task(store: ContentStore, spec_cid: str, spec_hash: bytes, *, timeout: float = 60.0) -> DemoTask:
    """Fetch and check everything a task names, or raise with the reason (`UnjudgeableTask` when
    the dispute game could not judge it)."""
    bundle = load_task(store, spec_cid, spec_hash, timeout=timeout)
    check_judgeable(bundle.graph, bundle.task)
    return bundle


def load_task(store: ContentStore, spec_cid: str, spec_hash: bytes, *, timeout: float = 60.0) -> DemoTask:
    """Fetch and check everything a task names against its commitments (judgeable or not)."""
    spec_bytes = store.cat(spec_cid, max_size=MAX_SPEC_BYTES, timeout=timeout)
    if _group_spec(spec_bytes) is not None:
        raise TaskError(f"{spec_cid} is a group task's spec: it trains no single model (docs/group-tasks.md §4.3)")
    task = TrainingTask.from_bytes(spec_bytes)
    if task.hash() != spec_hash:
        raise ArtifactMismatch(f"task spec {spec_cid} does not hash to the on-chain spec hash")
    # a training program, bound to the optimizer and schedule the spec names
    model_bytes = store.cat(task.model_cid, max_size=MAX_PROGRAM_BYTES, timeout=timeout)
    model = graph = ProgramTraining(Program.from_bytes(model_bytes), task.optimizer, task.steps, task.seed)
    if graph.hyper_root != task.hyper_root:
        raise ArtifactMismatch("the task's optimizer config does not give its hyper_root")
    if graph.batch_size != task.batch_size:
        raise ArtifactMismatch(f"the program trains batches of {graph.batch_size}, the task says {task.batch_size}")
    if graph.root != task.graph_root:
        raise ArtifactMismatch("the model does not give the task's graph_root")
    weights_bytes = store.cat(task.weights_cid, max_size=MAX_ARTIFACT_BYTES, timeout=timeout)
    weights = weights_from_bytes(weights_bytes, model)
    if checkpoint_root(weights, model.param_names) != task.weights_root:
        raise ArtifactMismatch("initial weights do not match the task's weights_root")
    dataset_bytes = store.cat(task.dataset_cid, max_size=MAX_ARTIFACT_BYTES, timeout=timeout)
    dataset = Dataset.from_bytes(dataset_bytes, input_dim=model.input_dim)
    if dataset.n_rows != task.dataset_rows or dataset.root() != task.dataset_root:
        raise ArtifactMismatch("dataset does not match the task's dataset_root")
    return DemoTask(task, model, graph, weights, dataset, model_bytes, weights_bytes, dataset_bytes)


def fetch_proof(store: ContentStore, proof_cid: str, proof_root: bytes, *, timeout: float = 60.0) -> ProofDocument:
    proof = ProofDocument.from_bytes(store.cat(proof_cid, max_size=MAX_SPEC_BYTES * 64, timeout=timeout))
    if proof.root != proof_root:
        raise ArtifactMismatch(f"proof document {proof_cid} does not match the on-chain proof root")
    return proof


def fetch_checkpoints(store: ContentStore, proof: ProofDocument, *, timeout: float = 60.0) -> list[bytes]:
    return [store.cat(cid, max_size=MAX_ARTIFACT_BYTES, timeout=timeout) for cid in proof.checkpoint_cids]


def checkpoint_file(directory: Path, index: int) -> Path:
    return directory / f"{index:06d}.safetensors"


def save_checkpoint(directory: Path, checkpoint: Checkpoint, bundle: DemoTask) -> None:
    """Persist a checkpoint atomically, with its segment's losses, for resumption and publishing."""
    directory.mkdir(parents=True, exist_ok=True)
    blob = checkpoint_file(directory, checkpoint.index)
    tmp = blob.with_suffix(".tmp")
    checkpoint.write(tmp, bundle.spec)
    tmp.replace(blob)
    (directory / f"{checkpoint.index:06d}.losses").write_text(" ".join(map(repr, checkpoint.losses)))


def load_checkpoints(directory: Path, bundle: DemoTask) -> list[Checkpoint]:
    """The saved checkpoints 0..j with no gap, as written by `save_checkpoint`."""
    checkpoints: list[Checkpoint] = []
    k = bundle.task.checkpoint_interval
    while (blob := checkpoint_file(directory, len(checkpoints))).exists():
        checkpoint = Checkpoint.from_bytes(blob.read_bytes(), bundle.spec, len(checkpoints), k)
        losses = (directory / f"{checkpoint.index:06d}.losses")
        checkpoint.losses = [float(v) for v in losses.read_text().split()] if losses.exists() else []
        checkpoints.append(checkpoint)
    return checkpoints
