"""A group participant's step disputed on chain through its group's task (docs/group-tasks.md
§4.1, §4.3): each participant of a 3-stage pipeline (the first reads rows and sends activations,
the middle reads only its state, the hyper row and the messages it received, the last reads rows,
computes the loss and sends gradients) is a program (`offchain/distributed/stage_program.py`) bound
to a task of its own, a participant of the group task whose proof commits the group's mail, as is
a replica of a 2 × 2 group, which sends its gradients to the all-reduce.

* One wrong element of a message it sends: the honest challenger's search over its trace passes
  its leaves (the rows are those the task's data link derives, the group drawing them with
  ``sampling="task"``; the messages are those of the mail), reaches that very element through the
  existing game and proves it with `prove_element`; over the honest trace it finds nothing.
* A message it computed on that is not the one its group's mail holds (it received something
  else, or claims to): its `recv` leaf loses to `prove_leaf_link`.
* A message it sends that is not the one the mail holds (the group committed another): its send
  node loses to `prove_leaf_link`, whoever received it.

The same holds of a stage whose messages are quantised (`TrainSpec.quantize`): a wrong code loses
to `prove_element`, and the honest trace, rounding and scales included, has nothing to prove."""

from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace

import arbitration_testing as T
import boa
import pytest
import torch
from program_testing import STEP, Setup, gas, to_prove

from offchain.distributed.group import GROUP_TASK, GroupTask, group_proof_root, group_task
from offchain.distributed.spec import GPTShape, QuantizeConfig, TrainSpec
from offchain.distributed.stage_program import (
    export_stage_program,
    group_mail,
    participant_program,
    participant_task,
    step_inputs,
    train_stage_programs,
    training_rows,
)
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.ml.commit import merkle_root, tensor_root
from offchain.ml.errors import GraphError
from offchain.ml.program import Corruption, Program, ProgramExecutor, execution_context
from offchain.ml.program_training import ProgramTraining

SPEC = TrainSpec(model=GPTShape(seq_len=8, dim=16, heads=2, layers=3), stages=3, steps=2, batch_size=4,
                 micro_batches=2, train_rows=16, holdout_rows=16, sampling="task", checkpoint_interval=1,
                 programs=True)
DATA_PARALLEL = dataclasses.replace(SPEC, model=dataclasses.replace(SPEC.model, layers=2), stages=2, replicas=2,
                                    batch_size=8)
QUANTISED = dataclasses.replace(SPEC, quantize=QuantizeConfig(bits=4, grad_bits=8))
QUANTISED_SUMS = dataclasses.replace(DATA_PARALLEL, quantize=QuantizeConfig(bits=4, grad_bits=8, sum_bits=8))
#: (spec, rank, the kind of message it cheats on): the first stage's activation, the middle and last
#: stages' gradient, a data-parallel replica's contribution to the gradient all-reduce, the middle
#: stage's quantised activation (a code: its round, max-abs scale and casts are judged) and a
#: replica's quantised contribution to the all-reduce
CASES = {"first": (SPEC, 0, "activation"), "middle": (SPEC, 1, "gradient"), "last": (SPEC, 2, "gradient"),
         "all-reduce": (DATA_PARALLEL, 3, "grad_sum"), "quantised": (QUANTISED, 1, "activation"),
         "quantised all-reduce": (QUANTISED_SUMS, 3, "grad_sum")}


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
    spec, rank, kind = CASES[case]
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
    assert torch.equal(trace[cheat.node], records[rank].sent[STEP][sent])  # the mail holds what it sent
    return dataclasses.replace(b, setup=Setup(SimpleNamespace(task=task), program, {}, tuple(trace)))


def test_participant_dispute__the_middle_stage_s_program_reads_only_its_state_hyper_row_and_messages():
    setup = bound("middle", False).setup
    leaves = {node.op for node in setup.program.nodes if node.op in ("data_x", "data_y", "rng", "recv")}
    assert leaves == {"recv"}
    assert setup.program.receives == 6  # two activations, two gradients, the other stages' squared gradient norms


@pytest.mark.parametrize("case", list(CASES))
def test_participant_dispute__one_wrong_sent_element_loses_to_prove_element(suite, parties, case):
    b = bound(case, True)
    cheating = list(b.setup.trace)
    dispute_id = b.to_prove(suite, parties, cheating)
    found = P.find_program_proof(suite.game.address, dispute_id, b.step(trace=cheating), b.setup.after_root(cheating))
    assert found is not None and found.fn == "prove_element"
    node, index = found.args[5], found.args[6]
    assert (node, index) == (b.cheat.node, 3)
    gas(suite, getattr(suite, found.contract), found.fn, parties.verifier, *found.args)  # printed with ARB_PROGRAM_GAS
    assert T.verdict(suite, dispute_id) == (False, True, 1)  # the challenger wins, proven


@pytest.mark.parametrize("case", list(CASES))
def test_participant_dispute__the_honest_participant_s_trace_has_nothing_to_prove(suite, parties, case):
    b = bound(case, False)
    honest = list(b.setup.trace)
    dispute_id = b.to_prove(suite, parties, honest)
    # its data rows (first and last stage) are the rows the task's data link derives, its messages the mail's
    assert P.find_program_proof(suite.game.address, dispute_id, b.step(trace=honest), b.setup.after_root(honest)) is None
    # the element the cheater lost on, opened in the honest trace, is what the program computes
    args = P.element_args(suite.game.address, dispute_id, b.step(trace=honest), b.cheat.node, 3)
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: element is consistent"):
            suite.programs.prove_element(*args)
    # and each of its messages, received or sent, is the one the mail holds
    program = b.setup.program
    for node_id in [n.id for n in program.nodes if n.op == "recv"] + list(program.sends):
        args = P.leaf_args(suite.game.address, dispute_id, b.step(trace=honest), node_id)
        with boa.env.prank(parties.verifier):
            with boa.reverts("arbitration: links hold"):
                suite.program_links.prove_leaf_link(*args)


@pytest.mark.parametrize("case", list(CASES))
def test_participant_dispute__a_message_received_other_than_the_mail_s_loses_its_recv_link(suite, parties, case):
    b = bound(case, False)
    received = [t.clone() for t in b.records[b.sp.rank].received[STEP]]
    received[-1].view(-1)[0] += 1e-2  # it computes on a message its sender did not send
    trace = b.trace(received=received)
    dispute_id = b.to_prove(suite, parties, trace)
    found = P.find_program_proof(suite.game.address, dispute_id, b.step(trace=trace), b.setup.after_root(trace))
    recv = [n.id for n in b.setup.program.nodes if n.op == "recv"]
    assert found is not None and found.fn == "prove_leaf_link"
    assert found.args[5][1][0][0] == recv[-1]  # the opened descriptor: its last recv leaf
    gas(suite, suite.program_links, found.fn, parties.verifier, *found.args)
    assert T.verdict(suite, dispute_id) == (False, True, 1)
    assert T.events(suite.program_links, "DisputeEnded")[-1].reason == T.END_LINK


@pytest.mark.parametrize("case", ["first", "all-reduce"])
def test_participant_dispute__a_sent_message_other_than_the_mail_s_loses_its_send_link(suite, parties, case):
    # the group's mail holds the cheating message; the participant's trace computes the honest one
    b = bound(case, True)
    honest = b.trace()
    dispute_id = b.to_prove(suite, parties, honest)
    found = P.find_program_proof(suite.game.address, dispute_id, b.step(trace=honest), b.setup.after_root(honest))
    assert found is not None and found.fn == "prove_leaf_link"
    assert found.args[5][1][0][0] == b.cheat.node and found.args[11] == b.setup.program.sends.index(b.cheat.node)
    args = list(found.args)
    args[11] = (args[11] + 1) % len(b.setup.program.sends) if len(b.setup.program.sends) > 1 else 1  # another send
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: not a linked leaf"):
            suite.program_links.prove_leaf_link(*args)
    gas(suite, suite.program_links, found.fn, parties.verifier, *found.args)
    assert T.verdict(suite, dispute_id) == (False, True, 1)


def test_participant_dispute__a_forged_mail_opening_is_refused(suite, parties):
    b = bound("middle", False)
    received = [t.clone() for t in b.records[b.sp.rank].received[STEP]]
    received[0].view(-1)[0] += 1e-2
    trace = b.trace(received=received)
    dispute_id = b.to_prove(suite, parties, trace)
    found = P.find_program_proof(suite.game.address, dispute_id, b.step(trace=trace), b.setup.after_root(trace))
    args = list(found.args)
    sends, inbox, offset, per_step = args[13]
    forged = {"the leaf": (9, bytes.fromhex("11" * 32), "arbitration: mail opening invalid"),
              "the siblings": (10, [bytes.fromhex("22" * 32)] * len(args[10]), "arbitration: mail opening invalid"),
              "the inbox": (13, (sends, [per_step - 1] * len(inbox), offset, per_step), "arbitration: mail does not match the program")}
    for what, (position, value, message) in forged.items():
        with boa.env.prank(parties.verifier):
            with boa.reverts(message):
                suite.program_links.prove_leaf_link(*args[:position], value, *args[position + 1:])
    suite.program_links.prove_leaf_link(*args, sender=parties.verifier)
    assert T.verdict(suite, dispute_id) == (False, True, 1)


def test_participant_dispute__a_stage_reading_rows_in_epoch_order_is_not_bound_to_a_task():
    spec = dataclasses.replace(SPEC, sampling="epochs")
    with pytest.raises(GraphError, match="sampling 'task'"):
        participant_task(export_stage_program(spec, 0), spec, [])


def _revealing(suite, parties, b: Bound, trace) -> tuple[int, tuple]:
    """A challenge of ``b``'s step through its group's task, and the solver's honest reveal."""
    before, after = b.setup.demo.task.weights_root, b.setup.after_root(trace)
    rank = b.sp.rank
    roots = [[t.weights_root, bytes(32), bytes(32)] for t in b.group.participants]
    roots[rank][1] = after
    task_id = suite.market.post(b.group.hash(), group_proof_root(roots, b.mail)[1], b.group.checkpoints)
    segment = b.group.segment(rank, STEP)
    dispute_id = suite.market.challenge(task_id, parties.solver, parties.verifier, segment)
    return dispute_id, M.reveal_participant_segment_args(dispute_id, segment, b.group.commitments(),
                                                         b.group.participants, [before, after], roots,
                                                         merkle_root(b.mail))


def test_group_dispute__the_solver_reveals_only_the_challenged_participant_s_segment_of_the_group_s_proof(suite, parties):
    b = bound("middle", False)
    dispute_id, args = _revealing(suite, parties, b, list(b.setup.trace))
    group, participants, commitments = args[2], args[3], args[4]
    other = b.group.participants[0]
    wrong = {
        "another participant's commitments": (4, M.commitments(other), "arbitration: commitments are not the participant's"),
        "participants other than the group's": (3, list(reversed(participants)), "arbitration: not the group's participants"),
        "a mail the proof does not commit": (8, bytes.fromhex("33" * 32), "arbitration: not the group's proof"),
        "a forged checkpoint opening": (6, M.multiproof([bytes(32)] * 9, [0, 1]),
                                       "arbitration: endpoints are not the checkpoints"),
    }
    for what, (position, value, message) in wrong.items():
        with boa.env.prank(parties.solver):
            with boa.reverts(message):
                suite.game.reveal_participant_segment(*args[:position], value, *args[position + 1:])
    with boa.env.prank(parties.solver):  # the group task is no single task
        with boa.reverts("arbitration: a group task"):
            suite.game.reveal_segment(dispute_id, args[1], group, args[5], args[6])
    gas(suite, suite.game, "reveal_participant_segment", parties.solver, *args)  # printed with ARB_PROGRAM_GAS
    # the dispute judges the participant's own task, and its messages against the group's mail
    d = suite.game.disputes(dispute_id)
    assert d.spec_hash == b.setup.demo.task.hash() and d.mail_root == merkle_root(b.mail)
    assert commitments == M.commitments(b.setup.demo.task)


def test_group_task__its_segments_are_each_participant_s_in_rank_order():
    b = bound("middle", False)
    group = b.group
    per = SPEC.steps // SPEC.checkpoint_interval
    assert group.checkpoints == len(group.participants) * per + 1
    assert [group.segment(rank, j) for rank in range(3) for j in range(per)] == list(range(3 * per))
    assert group.commitments()[4] == GROUP_TASK and group.commitments()[7] == 3 * SPEC.steps
    # every participant from the state its group trains from, and a spec hash of its own
    assert len({t.hash() for t in group.participants}) == 3


def test_participant_dispute__a_participant_s_step_posted_as_a_single_task_loses_at_its_first_message(suite, parties):
    """No group committed its messages: a recv leaf links to nothing, so the solver cannot defend it."""
    b = bound("middle", False)
    honest = list(b.setup.trace)
    dispute_id = to_prove(suite, parties, b.setup, honest)  # the participant's task alone, no mail
    recv = next(n.id for n in b.setup.program.nodes if n.op == "recv")
    args = P.leaf_args(suite.game.address, dispute_id, b.step(trace=honest), recv)
    suite.program_links.prove_leaf_link(*args, sender=parties.verifier)
    assert T.verdict(suite, dispute_id) == (False, True, 1)
