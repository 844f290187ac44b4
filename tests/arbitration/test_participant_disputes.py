"""A group participant's step disputed on chain (docs/group-tasks.md §4.1): the middle participant
of a 3-stage pipeline commits one wrong element of a gradient it sends. Its step is a program
(`offchain/distributed/stage_program.py`) that reads no data, only its state, the hyper row and the
messages it received (`recv` leaves); bound to a task of its own, the honest challenger's search
over the cheater's trace reaches that very element through the existing game and proves it with
`prove_element`, and over the honest trace it finds nothing to prove."""

from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace

import arbitration_testing as T
import boa
import torch
from program_testing import STEP, Setup, gas, to_prove

from offchain.distributed.engine import GPTShape, TrainSpec
from offchain.distributed.stage_program import export_stage_program, participant_task, step_inputs, train_stage_programs
from offchain.dispute import program_moves as P
from offchain.ml.program import Corruption, Program, ProgramExecutor, execution_context
from offchain.ml.program_training import ProgramTraining

SPEC = TrainSpec(model=GPTShape(seq_len=8, dim=16, heads=2, layers=3), stages=3, steps=2, batch_size=4,
                 micro_batches=2, train_rows=16, holdout_rows=16)
RANK = 1  # the middle stage: it receives activations and gradients and sends both
SEED = 5


@functools.cache
def participant():
    """The middle participant's program bound to a task, the state and messages of its step 0 as
    the group ran it, the element it corrupts, and its honest and cheating traces."""
    sp = export_stage_program(SPEC, RANK)
    gradient = next(i for i, m in enumerate(sp.sends) if m.kind == "gradient")
    cheat = Corruption(step=STEP, node=sp.program.sends[gradient], index=3, delta=1e-2)
    with execution_context(1):
        _, records = train_stage_programs(SPEC, corrupt={RANK: cheat})
        state, received = records[RANK].states[STEP], records[RANK].received[STEP]
        x, y, hyper = step_inputs(SPEC, STEP, RANK)
        run = functools.partial(ProgramExecutor(sp.program).run, list(state), x, y, hyper, keep_trace=True,
                                messages=list(received))
        honest, cheating = run().trace, run(corrupt=cheat).trace
    assert torch.equal(cheating[cheat.node].reshape(-1)[3], honest[cheat.node].reshape(-1)[3] + 1e-2)
    task = participant_task(sp, SPEC, state, seed=SEED)
    program = dataclasses.replace(Program.from_bytes(sp.program.to_bytes()), sends=())  # what the task names
    assert task.graph_root == program.root
    hyper = ProgramTraining(program, task.optimizer, SPEC.steps, SEED).hyper
    setup = Setup(SimpleNamespace(task=task), program, {}, tuple(honest))
    step = functools.partial(P.ProgramStep, task, program, step=STEP, state=list(state), hyper=hyper)
    return setup, step, cheat, cheating


def test_participant_dispute__the_middle_stage_s_program_reads_only_its_state_hyper_row_and_messages():
    setup, *_ = participant()
    leaves = {node.op for node in setup.program.nodes if node.op in ("data_x", "data_y", "rng", "recv")}
    assert leaves == {"recv"}
    assert setup.program.receives == 6  # two activations, two gradients, the other stages' squared gradient norms


def test_participant_dispute__one_wrong_sent_gradient_element_loses_to_prove_element(suite, parties):
    setup, step, cheat, cheating = participant()
    dispute_id = to_prove(suite, parties, setup, cheating)
    found = P.find_program_proof(suite.game.address, dispute_id, step(trace=cheating), setup.after_root(cheating))
    assert found is not None and found.fn == "prove_element"
    node, index = found.args[5], found.args[6]
    assert (node, index) == (cheat.node, 3)
    gas(suite, getattr(suite, found.contract), found.fn, parties.verifier, *found.args)  # printed with ARB_PROGRAM_GAS
    assert T.verdict(suite, dispute_id) == (False, True, 1)  # the challenger wins, proven


def test_participant_dispute__the_honest_participant_s_trace_has_nothing_to_prove(suite, parties):
    setup, step, cheat, cheating = participant()
    honest = list(setup.trace)
    dispute_id = to_prove(suite, parties, setup, honest)
    assert P.find_program_proof(suite.game.address, dispute_id, step(trace=honest), setup.after_root(honest)) is None
    # the element the cheater lost on, opened in the honest trace, is what the program computes
    args = P.element_args(suite.game.address, dispute_id, step(trace=honest), cheat.node, 3)
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: element is consistent"):
            suite.programs.prove_element(*args)
