"""Ready-made tasks: the MLP preset's program on the digits (64-32-10) and a tiny synthetic one for
fast tests; a program task from a module or from an exported program."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .artifacts import Dataset, digits_dataset, synthetic_dataset, weights_to_bytes
from .capture import ExportConfig, export_program, initial_tensors
from .commit import checkpoint_root, keccak256
from .exporter import mlp_preset
from .optim import OptimizerConfig
from .program import Program
from .program_training import ProgramTraining
from .task import TrainingTask


def local_cid(data: bytes) -> str:
    """Placeholder content address (``local:`` + keccak hex) when no storage layer is wired in."""
    return "local:" + keccak256(data).hex()


@dataclass(frozen=True)
class DemoTask:
    """A task together with every artifact it references (bytes and parsed forms)."""

    task: TrainingTask
    spec: ProgramTraining   # the checkpoint layout: the bound program's state
    graph: ProgramTraining  # what trains: the same binding (a cheat's may be corrupted)
    weights: dict[str, torch.Tensor]
    dataset: Dataset
    spec_bytes: bytes
    weights_bytes: bytes
    dataset_bytes: bytes


def program_task(
    program: Program,
    optimizer: OptimizerConfig,
    weights: dict[str, torch.Tensor],
    dataset: Dataset,
    *,
    steps: int,
    k: int,
    seed: int,
    cid: Callable[[bytes], str] = local_cid,
) -> DemoTask:
    """A task whose model is a training program: checkpoints hold its whole state (parameters,
    optimizer buffers, running statistics) and checkpoint 0 (``weights_bytes``) is ``weights``
    with zero optimizer buffers."""
    training = ProgramTraining(program, optimizer, steps, seed)
    return _assemble(training, program.to_bytes(), training, training.initial_state(weights), dataset,
                     steps=steps, k=k, seed=seed, lr=optimizer.lr, cid=cid, optimizer=optimizer,
                     hyper_root=training.hyper_root)


def mlp_task(input_dim: int, hidden: tuple[int, ...], classes: int, dataset: Dataset, *, steps: int, k: int,
             batch_size: int, lr: float, seed: int, cid: Callable[[bytes], str] = local_cid) -> DemoTask:
    """The MLP preset's program task (`dtm task post` without --program) on ``dataset``."""
    return program_task(*mlp_preset(input_dim, hidden, classes, batch_size=batch_size, lr=lr), dataset,
                        steps=steps, k=k, seed=seed, cid=cid)


def module_task(model: torch.nn.Module, config: ExportConfig, dataset: Dataset, *, steps: int, k: int,
                seed: int) -> DemoTask:
    """A program task for ``model``: its training step exported with ``config`` and its current
    parameters (and running statistics) as the initial weights."""
    program = export_program(model, config)
    weights = initial_tensors(model, program)
    return program_task(program, config.optimizer, weights, dataset, steps=steps, k=k, seed=seed)


def _assemble(model, model_bytes: bytes, graph, weights: dict[str, torch.Tensor], dataset: Dataset, *,
              steps: int, k: int, seed: int, lr: float, cid: Callable[[bytes], str], **program: Any) -> DemoTask:
    """The task spec naming every artifact by ``cid``, and the bundle of all of them."""
    weights_bytes, dataset_bytes = weights_to_bytes(weights, model), dataset.to_bytes()
    task = TrainingTask(
        model_cid=cid(model_bytes),
        weights_cid=cid(weights_bytes),
        dataset_cid=cid(dataset_bytes),
        weights_root=checkpoint_root(weights, model.param_names),
        dataset_root=dataset.root(),
        dataset_rows=dataset.n_rows,
        lr=lr,
        batch_size=graph.batch_size,
        steps=steps,
        seed=seed,
        checkpoint_interval=k,
        graph_root=graph.root,
        **program,
    )
    return DemoTask(task, model, graph, weights, dataset, model_bytes, weights_bytes, dataset_bytes)


def digits_task(
    steps: int = 300,
    k: int = 10,
    batch_size: int = 32,
    lr: float = 0.1,
    seed: int = 1,
    hidden: int = 32,
    cid: Callable[[bytes], str] = local_cid,
) -> DemoTask:
    """The 64-hidden-10 MLP preset on scikit-learn's bundled digits (no download)."""
    return mlp_task(64, (hidden,), 10, digits_dataset(), steps=steps, k=k, batch_size=batch_size, lr=lr, seed=seed,
                    cid=cid)


def tiny_task(
    steps: int = 40,
    k: int = 4,
    batch_size: int = 8,
    lr: float = 0.2,
    seed: int = 7,
    cid: Callable[[bytes], str] = local_cid,
) -> DemoTask:
    """The 8-8-3 MLP preset on 64 synthetic rows: milliseconds per run, for tests."""
    return mlp_task(8, (8,), 3, synthetic_dataset(64, 8, 3, seed=11), steps=steps, k=k, batch_size=batch_size,
                    lr=lr, seed=seed, cid=cid)
