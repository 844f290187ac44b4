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
to `prove_element`, and the honest trace, rounding and scales included, has nothing to prove; and
of a DiLoCo replica's pseudo-gradient at the end of a round, while inside a round the message is
zero by definition and one computed otherwise loses its send link."""

from __future__ import annotations

import dataclasses

import arbitration_testing as T
import boa
import pytest
from participant_testing import CASES, SPEC, Bound, bound
from program_testing import STEP, gas, to_prove

from offchain.distributed.group import GROUP_TASK, group_proof_root
from offchain.distributed.stage_program import export_stage_program, participant_task
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.ml.commit import merkle_root
from offchain.ml.errors import GraphError


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


def test_participant_dispute__a_pseudo_gradient_sent_inside_a_diloco_round_loses_to_the_mail_s_zero(suite, parties):
    """Inside a round a replica's pseudo-gradient is zero by definition (it crosses no link, the
    mail holds zero): one that computes otherwise loses; the honest one, sending zero, does not."""
    honest, cheater = bound("between rounds", False), bound("between rounds", True)
    assert not honest.records[honest.sp.rank].sent[STEP][-1].any() and honest.mail == cheater.mail
    trace = list(honest.setup.trace)
    dispute_id = honest.to_prove(suite, parties, trace)
    assert P.find_program_proof(suite.game.address, dispute_id, honest.step(trace=trace),
                                honest.setup.after_root(trace)) is None
    trace = list(cheater.setup.trace)
    dispute_id = cheater.to_prove(suite, parties, trace)
    found = P.find_program_proof(suite.game.address, dispute_id, cheater.step(trace=trace),
                                 cheater.setup.after_root(trace))
    assert found is not None and found.fn == "prove_leaf_link" and found.args[5][1][0][0] == cheater.cheat.node
    gas(suite, getattr(suite, found.contract), found.fn, parties.verifier, *found.args)
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
