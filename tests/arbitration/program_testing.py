"""Program tasks for the dispute tests over a program's step: real MLP, CNN, GPT and dropout
programs (tests/judge/program_runs.py) bound to tasks, one step traced honestly, the game driven to
the proof phase over a trace, and traces tampered at one element."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import arbitration_testing as T
import boa
import torch

from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.ml.artifacts import Dataset
from offchain.ml.capture import export_program
from offchain.ml.commit import merkle_root, tensor_root
from offchain.ml.demo import DemoTask, program_task
from offchain.ml.program import Program, trace_roots
from offchain.ml.train import step_trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judge"))
from program_runs import FAMILIES  # noqa: E402

ROWS = 16
STEP = 0


@dataclass(frozen=True)
class Setup:
    """A program task (steps 2, k 1), the state before step 0 and its honest trace."""

    demo: DemoTask
    program: Program
    state: dict
    trace: tuple

    def after_root(self, trace) -> bytes:
        """The state root a solver whose trace is ``trace`` reveals after the step."""
        return merkle_root([tensor_root(trace[o]) for o in self.program.outputs])

    def data(self, trace) -> P.ProgramStep:
        demo = self.demo
        return P.ProgramStep(demo.task, self.program, list(trace), STEP,
                             [self.state[name] for name in demo.graph.param_names], demo.graph.hyper,
                             demo.dataset.x, demo.dataset.y)


@functools.cache
def setup(name: str) -> Setup:
    make, config = FAMILIES[name]
    torch.manual_seed(0)
    model = make()
    program = export_program(model, config)
    weights = dict(zip(program.param_names, [p.detach().clone() for p in model.parameters()]))
    g = torch.Generator().manual_seed(2)
    dim = config.data_dim
    if config.loss == "lm_cross_entropy":
        x = torch.randint(0, 40, (ROWS, dim), generator=g).float()
        y = torch.zeros(ROWS, dtype=torch.int64)
    else:
        x = torch.randn(ROWS, dim, generator=g)
        y = torch.randint(0, 5, (ROWS,), generator=g)
    demo = program_task(program, config.optimizer, weights, Dataset(x, y), steps=2, k=1, seed=5)
    state = demo.weights
    trace = step_trace(demo.graph, demo.task, demo.dataset, state, STEP).trace
    return Setup(demo, program, state, tuple(trace))


def to_prove(suite, parties, s: Setup, trace, after: bytes | None = None) -> int:
    """A dispute over step 0 of ``s``'s task in which the solver committed ``trace`` (and revealed
    ``after``, by default its trace's outputs): the challenger is to prove."""
    task = s.demo.task
    before = task.weights_root
    after = after or s.after_root(trace)
    checkpoints = [before, after, bytes(32)]
    _, dispute_id = T.post_and_challenge(suite, parties, task.hash(), checkpoints, 0)
    game = suite.game
    with boa.env.prank(parties.solver):
        game.reveal_segment(*M.reveal_segment_args(dispute_id, 0, task, [before, after], checkpoints))
    with boa.env.prank(parties.verifier):
        game.pick_step(*M.pick_step_args(dispute_id, [before, after], 0))
    with boa.env.prank(parties.solver):
        game.commit_trace(dispute_id, STEP, merkle_root(trace_roots(trace)))
    return dispute_id


def tampered(trace, node_id: int, index: int = 0, value=None) -> list:
    out = list(trace)
    t = out[node_id].clone()
    flat = t.reshape(-1)
    if value is not None:
        flat[index] = value
    elif t.dtype == torch.float32:
        flat[index] = flat[index] * 1.5 + 0.25
    elif t.dtype == torch.bool:
        flat[index] = ~flat[index]
    else:
        flat[index] = flat[index] + 1
    out[node_id] = t
    return out


def first_node(program: Program, op: str, skip: int = 0) -> int:
    return [n.id for n in program.nodes if n.op == op][skip]
