"""Group participants bound to tasks of their own, for the disputes over one participant's step
(docs/group-tasks.md §4.1, §4.3): a group trained with its stage programs, one participant sending
one wrong element or none, and what a dispute over its step STEP through the group's task needs."""

from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace

import torch
from program_testing import STEP, Setup, to_prove

from offchain.distributed.group import GroupTask, group_task
from offchain.distributed.spec import DiLoCoConfig, GPTShape, QuantizeConfig, TrainSpec
from offchain.distributed.stage_program import (
    export_stage_program,
    group_mail,
    participant_program,
    silent,
    step_inputs,
    train_stage_programs,
    training_rows,
)
from offchain.dispute import program_moves as P
from offchain.ml.commit import merkle_root, tensor_root
from offchain.ml.program import Corruption, Program, ProgramExecutor, execution_context
from offchain.ml.program_training import ProgramTraining

SPEC = TrainSpec(model=GPTShape(seq_len=8, dim=16, heads=2, layers=3), stages=3, steps=2, batch_size=4,
                 micro_batches=2, train_rows=16, holdout_rows=16, sampling="task", checkpoint_interval=1,
                 programs=True)
DATA_PARALLEL = dataclasses.replace(SPEC, model=dataclasses.replace(SPEC.model, layers=2), stages=2, replicas=2,
                                    batch_size=8)
QUANTISED = dataclasses.replace(SPEC, quantize=QuantizeConfig(bits=4, grad_bits=8))
QUANTISED_SUMS = dataclasses.replace(DATA_PARALLEL, quantize=QuantizeConfig(bits=4, grad_bits=8, sum_bits=8))
DILOCO = dataclasses.replace(DATA_PARALLEL, diloco=DiLoCoConfig(inner_steps=1))  # every step ends a round
#: (spec, rank, the kind of message it cheats on): the first stage's activation, the middle and last
#: stages' gradient, a data-parallel replica's contribution to the gradient all-reduce, the middle
#: stage's quantised activation (a code: its round, max-abs scale and casts are judged), a
#: replica's quantised contribution to the all-reduce and a DiLoCo replica's pseudo-gradient
CASES = {"first": (SPEC, 0, "activation"), "middle": (SPEC, 1, "gradient"), "last": (SPEC, 2, "gradient"),
         "all-reduce": (DATA_PARALLEL, 3, "grad_sum"), "quantised": (QUANTISED, 1, "activation"),
         "quantised all-reduce": (QUANTISED_SUMS, 3, "grad_sum"),
         "diloco": (DILOCO, 3, "outer")}
#: a DiLoCo replica sending a pseudo-gradient on a step inside a round (the message is zero by
#: definition: the mail holds zero, whatever its program computes)
BETWEEN_ROUNDS = {"between rounds": (dataclasses.replace(DATA_PARALLEL, diloco=DiLoCoConfig(inner_steps=2)), 3, "outer")}


@dataclasses.dataclass(frozen=True)
class Bound:
    """A participant of a group task: the group run, the element it corrupts (in a message it
    sends, when it cheats) and what a dispute over its step STEP needs."""

    sp: object
    spec: TrainSpec
    group: GroupTask
    records: list
    mail: list
    cheat: Corruption
    setup: Setup
    step: functools.partial

    def to_prove(self, suite, parties, trace) -> int:
        """A dispute through the group's task over its step STEP, in which it committed ``trace``."""
        return to_prove(suite, parties, self.setup, trace, group=self.group, mail=self.mail)

    def trace(self, *, corrupt: Corruption | None = None, received: list | None = None) -> list:
        """Its trace of step STEP computed on ``received`` (by default what it received)."""
        record = self.records[self.sp.rank]
        x, y, hyper = step_inputs(self.spec, STEP, self.sp.rank)
        with execution_context(1):
            return ProgramExecutor(self.sp.program).run(
                list(record.states[STEP]), x, y, hyper, keep_trace=True, corrupt=corrupt,
                messages=list(record.received[STEP] if received is None else received)).trace


@functools.cache
def bound(case: str, cheats: bool) -> Bound:
    """Participant ``case`` of a group in which it sends one wrong element (``cheats``) or none."""
    spec, rank, kind = {**CASES, **BETWEEN_ROUNDS}[case]
    sp = export_stage_program(spec, rank)
    sent = next(i for i, m in enumerate(sp.sends) if m.kind == kind)
    cheat = Corruption(step=STEP, node=sp.program.sends[sent], index=3, delta=1e-2)
    with execution_context(1):
        _, records = train_stage_programs(spec, corrupt={rank: cheat} if cheats else None)
    mail = group_mail(records)
    state = records[rank].states[STEP]
    group = group_task(spec)
    task = group.participants[rank]
    program = Program.from_bytes(participant_program(sp, spec).to_bytes())  # what the task names
    # the group task's participant: this program, from the state the group trained from
    assert task.graph_root == program.root and task.weights_root == merkle_root([tensor_root(t) for t in state])
    hyper = ProgramTraining(program, task.optimizer, spec.steps, task.seed).hyper
    rows = training_rows(spec)
    step = functools.partial(P.ProgramStep, task, program, step=STEP, state=list(state), hyper=hyper, x=rows.x,
                             y=rows.y, mail=mail)
    b = Bound(sp, spec, group, records, mail, cheat, None, step)
    trace = b.trace(corrupt=cheat if cheats else None)
    delivered = torch.zeros_like(trace[cheat.node]) if silent(spec, STEP, sp.sends[sent]) else trace[cheat.node]
    assert torch.equal(delivered, records[rank].sent[STEP][sent])  # the mail holds what it sent
    return dataclasses.replace(b, setup=Setup(SimpleNamespace(task=task), program, {}, tuple(trace)))
