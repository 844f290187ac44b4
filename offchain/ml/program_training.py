"""A training program bound to one task: what proof-of-learning trains, replays and verifies.

:class:`ProgramTraining` is what ``train``, ``replay``, ``segment_state_roots``, ``step_trace``,
``profile_threshold`` and ``verify`` run, for the MLP preset, a CNN or a transformer alike:

* the **state** it checkpoints is the program's whole training state, parameters then optimizer
  buffers (momentum, Adam moments), so a replay from any checkpoint continues the same run;
* step ``s`` reads row ``s`` of the task's **hyper table** (learning rate and bias corrections of
  the schedule, computed once in float64 and rounded to float32: :meth:`OptimizerConfig.hyper_table`)
  and, when the program draws dropout masks, the key ``step_key(seed, s)``;
* checkpoint 0 is the initial weights with zero buffers (:meth:`initial_state`), and its root is
  the task's ``weights_root``.
"""

from __future__ import annotations

import copy
from typing import Callable, Mapping, Sequence

import torch

from .artifacts import all_finite, load_tensors
from .commit import tensor_root
from .errors import GraphError
from .optim import OptimizerConfig
from .ops import LEAVES
from .program import Corruption, Program, ProgramExecutor, StepOutput, step_key


class ProgramTraining:
    """``program`` trained for ``steps`` steps with ``optimizer``'s schedule and the task ``seed``."""

    corruption: Corruption | None = None  # a cheat's wrong element (`corrupted`); None when honest

    def __init__(self, program: Program, optimizer: OptimizerConfig, steps: int, seed: int) -> None:
        if tuple(optimizer.hyper_names) != tuple(program.hyper_names):
            raise GraphError(f"the program reads hyper-parameters {list(program.hyper_names)}, "
                             f"optimizer {optimizer.name!r} provides {list(optimizer.hyper_names)}")
        buffers = sum(slot.kind == "buffer" for slot in program.state)
        kinds = optimizer.buffers()  # for each trained parameter (a frozen one keeps none)
        if (buffers % len(kinds) if kinds else buffers) or buffers > len(kinds) * len(program.param_names):
            raise GraphError(f"the program keeps {buffers} optimizer buffers, optimizer {optimizer.name!r} "
                             f"needs {len(kinds)} ({', '.join(kinds) or 'none'}) per trained parameter")
        self.program = program
        self.optimizer = optimizer
        self.seed = seed
        self.hyper = optimizer.hyper_table(steps)
        self.root = program.root
        self.param_names = tuple(slot.name for slot in program.state)

    @property
    def batch_size(self) -> int:
        return self.program.batch_size

    @property
    def input_dim(self) -> int:
        return self.program.nodes[self.program.batch_leaf].shape[1]

    @property
    def hyper_root(self) -> bytes:
        """Commitment to the hyper table (row ``s`` is step ``s``'s ``hyper`` leaf)."""
        return tensor_root(self.hyper)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Checkpoint layout: every state tensor by name (what ``weights_to_bytes`` validates)."""
        return {slot.name: slot.shape for slot in self.program.state}

    def initial_state(self, weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Checkpoint 0: the submitter's weights (parameters and running statistics), zero
        optimizer buffers."""
        missing = sorted(slot.name for slot in self.program.state if slot.kind != "buffer" and slot.name not in weights)
        if missing:
            raise GraphError(f"weights lack parameter(s) {missing}")
        return {slot.name: weights[slot.name].clone() if slot.kind != "buffer" else torch.zeros(slot.shape)
                for slot in self.program.state}

    def executor(self, precision: str = "float32") -> ProgramStepper:
        return ProgramStepper(self, precision)

    def corrupted(self, corruption: Corruption) -> ProgramTraining:
        """This binding with a cheat's wrong element: every train, replay, state-root and trace
        call through it reproduces the corrupted run."""
        node = self.program.nodes[corruption.node]
        if node.op in LEAVES or node.dtype != "f32" or not 0 <= corruption.index < node.numel \
                or not 0 <= corruption.step < len(self.hyper):
            raise GraphError(f"{corruption} is not a float element of a computed node in the task")
        other = copy.copy(self)
        other.corruption = corruption
        return other


def initial_weights(program: Program, data: bytes) -> dict[str, torch.Tensor]:
    """The parameters (and running statistics) of ``program`` from a safetensors file (`dtm model
    export --weights-out`): exactly those, float32, of their shapes, finite."""
    expected = {slot.name: (("F32",), slot.shape) for slot in program.state if slot.kind != "buffer"}
    weights = load_tensors(data, expected)
    for name, tensor in weights.items():
        if not all_finite(tensor):
            raise GraphError(f"initial weight {name!r} contains NaN or infinity")
    return {name: weights[name] for name in expected}


class ProgramStepper:
    """One step of a bound program: the step's hyper row, dropout key and a cheat's corruption."""

    def __init__(self, training: ProgramTraining, precision: str) -> None:
        self.training = training
        self._run = ProgramExecutor(training.program, precision).run

    def run(self, params: Sequence[torch.Tensor], x_batch: torch.Tensor, y_batch: torch.Tensor,
            keep_trace: bool = False, step: int = 0,
            on_node: Callable[[int, torch.Tensor], None] | None = None, consume: bool = False) -> StepOutput:
        training = self.training
        if not 0 <= step < len(training.hyper):
            raise GraphError(f"step {step} is outside the task's {len(training.hyper)} steps")
        wrong = training.corruption if training.corruption and training.corruption.step == step else None
        out = self._run(params, x_batch, y_batch, training.hyper[step], keep_trace,
                        step_key(training.seed, step), wrong, on_node, consume)
        return StepOutput(out.state, out.loss.reshape(1), out.trace)


__all__ = ["ProgramStepper", "ProgramTraining", "initial_weights"]
