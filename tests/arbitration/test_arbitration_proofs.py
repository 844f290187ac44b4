"""Final proofs and data availability on real training data (the MLP preset's 8-8-3 program): what
every proof names (the trace root, the task), a data row's checks, front-running, the game's phase
and clock, and demand / post. Each kind of proof against each op is in test_program_disputes.py."""

from __future__ import annotations

import arbitration_testing as T
import boa
import pytest
import torch
from eth_utils import keccak

from offchain.chain.suite import TaskState
from offchain.dispute import game as G
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.ml.program import trace_roots


@pytest.fixture
def forged(suite, parties):
    """The fabricating solver's forged update committed: the challenger's element proof."""
    play = T.cheat_play("forged")
    _, dispute_id = T.play_to_prove(suite, parties, play)
    d = suite.game.disputes(dispute_id)
    proof = P.find_program_proof(suite.game.address, dispute_id, play.step_data(), d.state_after)
    assert proof.kind == "element"
    return play, dispute_id, proof.args


def _expect(suite, sender, fn, args, reason):
    with boa.env.prank(sender), boa.reverts(reason):
        getattr(suite.prover(fn), fn)(*args)


def _demand(suite, play, dispute_id, node, start, count, trace_root=None, value=0):
    """`ProgramChecker.demand_elements` of elements [start, start + count) of ``node`` (sent by the
    caller's prank), naming ``trace_root`` when given instead of the committed one."""
    data = play.step_data()
    args = list(P.demand_args(suite.game.address, dispute_id, data, node, start, count))
    if trace_root is not None:
        args[2] = trace_root
    suite.programs.demand_elements(*args, value=value)


# ------------------------------------------------------------------------------- what each proof checks


def test_proof__names_the_trace_root_and_the_task(suite, parties, forged):
    _, _, args = forged
    bad = list(args)
    bad[2] = keccak(b"another trace")
    _expect(suite, parties.verifier, "prove_element", bad, "arbitration: wrong trace root")
    bad = list(args)
    bad[3] = (*args[3][:-1], 99)
    _expect(suite, parties.verifier, "prove_element", bad, "arbitration: commitments do not match the task")


def test_data_proof__checks(suite, parties, forged):
    play, dispute_id, _ = forged
    data, game, program = play.step_data(), suite.game.address, play.program
    args = list(P.leaf_args(game, dispute_id, data, program.leaf("data_y"), 0))
    bad = list(args)
    bad[11] = play.task.batch_size
    _expect(suite, parties.verifier, "prove_leaf_link", bad, "arbitration: no such row")
    x_row, label, siblings = args[12]
    bad = list(args)
    bad[12] = (x_row, label + 1, siblings)
    _expect(suite, parties.verifier, "prove_leaf_link", bad, "arbitration: dataset row invalid")
    _expect(suite, parties.verifier, "prove_leaf_link", args, "arbitration: data row matches")


# ------------------------------------------------------------------------------- front-running, wrong phase


def test_front_run__nobody_but_the_recorded_challenger_can_use_a_proof(suite, parties, forged):
    _, _, args = forged
    for thief in (parties.stranger, parties.whistleblower, parties.solver, parties.submitter):
        _expect(suite, thief, "prove_element", args, "arbitration: caller is not the challenger")
    with boa.env.prank(parties.verifier):
        suite.programs.prove_element(*args)
    [ended] = T.events(suite.programs, "DisputeEnded")
    assert T.verdict(suite, ended.dispute_id) == (False, True, 1)
    assert suite.game.disputes(ended.dispute_id).challenger == parties.verifier
    _expect(suite, parties.verifier, "prove_element", args, "arbitration: dispute closed")


def test_proof__before_the_trace__wrong_phase(suite, parties):
    play = T.cheat_play("forged")
    _, dispute_id = T.open_dispute(suite, parties, play.demo, play.checkpoint_roots, play.segment)
    args = P.output_link_args(suite.game.address, dispute_id, play.step_data())
    _expect(suite, parties.verifier, "prove_output_link", args, "arbitration: wrong phase")


def test_proof__after_the_clock__expired(suite, parties, forged):
    _, dispute_id, args = forged
    boa.env.time_travel(seconds=suite.game.deadline(dispute_id) - boa.env.timestamp + 1)
    _expect(suite, parties.verifier, "prove_element", args, "arbitration: clock expired")
    suite.game.timeout(dispute_id)
    assert suite.game.disputes(dispute_id).phase == G.SOLVER_WON


# ------------------------------------------------------------------------------- data availability


def test_demand_and_post__values_reach_the_challenger(suite, parties):
    play = T.honest_play()
    _, dispute_id = T.play_to_prove(suite, parties, play)
    program, game = play.program, suite.game.address
    for node_id, start, count in ((program.leaf("data_y"), 2, 5), (program.outputs[0], 10, 40)):
        with boa.env.prank(parties.verifier):
            _demand(suite, play, dispute_id, node_id, start, count, value=suite.game.demand_fee(count))
        [demanded] = T.events(suite.programs, "ElementsDemanded")
        assert (demanded.node, demanded.start, demanded.count) == (node_id, start, count)
        assert suite.game.to_move(dispute_id) == parties.solver
        assert suite.game.disputes(dispute_id).phase == G.DEMAND
        boa.env.time_travel(seconds=30)
        with boa.env.prank(parties.solver):
            suite.checker.post_elements(*M.post_args(game, dispute_id, play.trace, node_id, start, count))
        [posted] = T.events(suite.checker, "ElementsPosted")
        tensor = play.trace[node_id]
        assert posted.tensor_root == trace_roots(play.trace)[node_id]
        values = M.decode_values(list(posted.values), tensor.dtype)
        assert torch.equal(values, tensor.reshape(-1)[start:start + count])
        assert suite.game.disputes(dispute_id).phase == G.PROVE
    assert suite.game.disputes(dispute_id).demands == 2


def test_demand__checks(suite, parties):
    play = T.honest_play()
    _, dispute_id = T.play_to_prove(suite, parties, play)
    node = play.program.outputs[0]
    numel = play.program.nodes[node].numel
    with boa.env.prank(parties.verifier):
        for start, count in ((0, 0), (0, G.MAX_DEMAND + 1), (numel - 1, 2), (numel, 1)):
            with boa.reverts("arbitration: bad element range"):
                _demand(suite, play, dispute_id, node, start, count)
        with boa.reverts("arbitration: wrong trace root"):
            _demand(suite, play, dispute_id, node, 0, 1, trace_root=keccak(b"t"))
    with boa.env.prank(parties.solver), boa.reverts("arbitration: caller is not the challenger"):
        _demand(suite, play, dispute_id, node, 0, 1)


def test_post__checks_and_silence_loses(suite, parties):
    play = T.honest_play()
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    game = suite.game.address
    node = play.program.outputs[0]
    with boa.env.prank(parties.verifier):
        _demand(suite, play, dispute_id, node, 0, 8, value=suite.game.demand_fee(8))
    good = M.post_args(game, dispute_id, play.trace, node, 0, 8)
    with boa.env.prank(parties.solver):
        with boa.reverts("arbitration: wrong demand"):
            suite.checker.post_elements(*M.post_args(game, dispute_id, play.trace, node, 0, 7))
        bad = list(good)
        bad[5] = keccak(b"not the root")
        with boa.reverts("arbitration: trace opening invalid"):
            suite.checker.post_elements(*bad)
        other = M.post_args(game, dispute_id, play.trace, node - 1, 0, 8)
        bad = list(good)
        bad[7] = other[7]
        with boa.reverts("arbitration: tensor opening invalid"):
            suite.checker.post_elements(*bad)
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: caller is not the solver"):
        suite.checker.post_elements(*good)
    boa.env.time_travel(seconds=suite.game.deadline(dispute_id) - boa.env.timestamp + 1)
    with boa.env.prank(parties.solver), boa.reverts("arbitration: clock expired"):
        suite.checker.post_elements(*good)
    suite.game.timeout(dispute_id)
    assert suite.game.disputes(dispute_id).phase == G.CHALLENGER_WON
    assert suite.market.tasks(task_id).state == TaskState.OPEN
    assert T.verdict(suite, dispute_id) == (False, False, 1)  # won on time, not by proof
