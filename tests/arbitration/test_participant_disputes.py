"""A group participant's step disputed on chain (docs/group-tasks.md §4.1): each participant of a
3-stage pipeline (the first reads rows and sends activations, the middle reads only its state, the
hyper row and the messages it received, the last reads rows, computes the loss and sends gradients)
is a program (`offchain/distributed/stage_program.py`) bound to a task of its own, as is a
replica of a 2 × 2 group, which sends its gradients to the all-reduce. One wrong element of a
message it sends: the honest challenger's search over its trace passes its leaves
(the rows are those the task's data link derives, the group drawing them with
``sampling="task"``), reaches that very element through the existing game and proves it with
`prove_element`; over the honest trace it finds nothing to prove."""

from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace

import arbitration_testing as T
import boa
import pytest
import torch
from program_testing import STEP, Setup, gas, to_prove

from offchain.distributed.engine import GPTShape, TrainSpec
from offchain.distributed.stage_program import (
    export_stage_program,
    participant_task,
    step_inputs,
    train_stage_programs,
    training_rows,
)
from offchain.dispute import program_moves as P
from offchain.ml.errors import GraphError
from offchain.ml.program import Corruption, Program, ProgramExecutor, execution_context
from offchain.ml.program_training import ProgramTraining

SPEC = TrainSpec(model=GPTShape(seq_len=8, dim=16, heads=2, layers=3), stages=3, steps=2, batch_size=4,
                 micro_batches=2, train_rows=16, holdout_rows=16, sampling="task")
DATA_PARALLEL = dataclasses.replace(SPEC, model=dataclasses.replace(SPEC.model, layers=2), stages=2, replicas=2,
                                    batch_size=8)
#: (spec, rank, the kind of message it cheats on): the first stage's activation, the middle and last
#: stages' gradient, and a data-parallel replica's contribution to the gradient all-reduce
CASES = {"first": (SPEC, 0, "activation"), "middle": (SPEC, 1, "gradient"), "last": (SPEC, 2, "gradient"),
         "all-reduce": (DATA_PARALLEL, 3, "grad_sum")}


@functools.cache
def participant(case: str):
    """The participant's program bound to a task, the state and messages of its step 0 as the
    group ran it, the element it corrupts (in a message it sends), and its honest and cheating
    traces."""
    spec, rank, kind = CASES[case]
    sp = export_stage_program(spec, rank)
    sent = next(i for i, m in enumerate(sp.sends) if m.kind == kind)
    cheat = Corruption(step=STEP, node=sp.program.sends[sent], index=3, delta=1e-2)
    with execution_context(1):
        _, records = train_stage_programs(spec, corrupt={rank: cheat})
        state, received = records[rank].states[STEP], records[rank].received[STEP]
        x, y, hyper = step_inputs(spec, STEP, rank)
        run = functools.partial(ProgramExecutor(sp.program).run, list(state), x, y, hyper, keep_trace=True,
                                messages=list(received))
        honest, cheating = run().trace, run(corrupt=cheat).trace
    assert torch.equal(cheating[cheat.node].reshape(-1)[3], honest[cheat.node].reshape(-1)[3] + 1e-2)
    task = participant_task(sp, spec, state)
    program = dataclasses.replace(Program.from_bytes(sp.program.to_bytes()), sends=())  # what the task names
    assert task.graph_root == program.root
    hyper = ProgramTraining(program, task.optimizer, spec.steps, task.seed).hyper
    rows = training_rows(spec)
    setup = Setup(SimpleNamespace(task=task), program, {}, tuple(honest))
    step = functools.partial(P.ProgramStep, task, program, step=STEP, state=list(state), hyper=hyper, x=rows.x, y=rows.y)
    return setup, step, cheat, cheating


def test_participant_dispute__the_middle_stage_s_program_reads_only_its_state_hyper_row_and_messages():
    setup, *_ = participant("middle")
    leaves = {node.op for node in setup.program.nodes if node.op in ("data_x", "data_y", "rng", "recv")}
    assert leaves == {"recv"}
    assert setup.program.receives == 6  # two activations, two gradients, the other stages' squared gradient norms


@pytest.mark.parametrize("case", list(CASES))
def test_participant_dispute__one_wrong_sent_element_loses_to_prove_element(suite, parties, case):
    setup, step, cheat, cheating = participant(case)
    dispute_id = to_prove(suite, parties, setup, cheating)
    found = P.find_program_proof(suite.game.address, dispute_id, step(trace=cheating), setup.after_root(cheating))
    assert found is not None and found.fn == "prove_element"
    node, index = found.args[5], found.args[6]
    assert (node, index) == (cheat.node, 3)
    gas(suite, getattr(suite, found.contract), found.fn, parties.verifier, *found.args)  # printed with ARB_PROGRAM_GAS
    assert T.verdict(suite, dispute_id) == (False, True, 1)  # the challenger wins, proven


@pytest.mark.parametrize("case", list(CASES))
def test_participant_dispute__the_honest_participant_s_trace_has_nothing_to_prove(suite, parties, case):
    setup, step, cheat, _ = participant(case)
    honest = list(setup.trace)
    dispute_id = to_prove(suite, parties, setup, honest)
    # its data rows (first and last stage) are the rows the task's data link derives
    assert P.find_program_proof(suite.game.address, dispute_id, step(trace=honest), setup.after_root(honest)) is None
    # the element the cheater lost on, opened in the honest trace, is what the program computes
    args = P.element_args(suite.game.address, dispute_id, step(trace=honest), cheat.node, 3)
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: element is consistent"):
            suite.programs.prove_element(*args)


def test_participant_dispute__a_stage_reading_rows_in_epoch_order_is_not_bound_to_a_task():
    spec = dataclasses.replace(SPEC, sampling="epochs")
    with pytest.raises(GraphError, match="sampling 'task'"):
        participant_task(export_stage_program(spec, 0), spec, [])
