"""Final proofs and data availability on real training data (the tiny 8-8-3 task): link mismatch,
wrong data row, inconsistent element (every op, with the real one-step judge), what each proof
checks, front-running, and demand / post."""

from __future__ import annotations

import dataclasses

import arbitration_testing as T
import boa
import pytest
import torch
from eth_utils import keccak

from offchain.chain.suite import TaskState
from offchain.dispute import game as G
from offchain.dispute import moves as M
from offchain.ml.graph import trace_roots
from offchain.ml.train import step_trace

PROVE = {"link": "prove_link_mismatch", "data": "prove_data_mismatch", "element": "prove_element"}


def _prove(suite, sender, kind, args):
    with boa.env.prank(sender):
        getattr(suite.checker, PROVE[kind])(*args)


def _with_trace(play: T.Play, trace) -> T.Play:
    return dataclasses.replace(play, trace=list(trace))


def _context(suite, dispute_id):
    d = suite.game.disputes(dispute_id)
    return d.state_before, d.state_after


def _final(suite, dispute_id, play):
    before, after = _context(suite, dispute_id)
    return M.find_final_proof(suite.game.address, dispute_id, play.step_data(), before, after, play.step)


def _assert_challenger_won(suite, parties, task_id, dispute_id, reason):
    [ended] = T.events(suite.checker, "DisputeEnded")
    assert (ended.dispute_id, ended.solver_won, ended.reason) == (dispute_id, False, reason)
    assert suite.game.disputes(dispute_id).phase == G.CHALLENGER_WON
    assert suite.market.tasks(task_id).state == TaskState.OPEN
    # the market is told once that the challenger won through a checked proof
    assert T.verdict(suite, dispute_id) == (False, True, 1)


# ------------------------------------------------------------------------------- the cheater loses


def test_link_after__honest_trace_of_a_fabricated_segment(suite, parties):
    play = T.cheat_play("honest")
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    proof = _final(suite, dispute_id, play)
    assert proof.kind == "link" and proof.args[4] is True
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: links hold"):
        suite.checker.prove_link_mismatch(*M.link_args(suite.game.address, dispute_id, play.step_data(), False))
    _prove(suite, parties.verifier, "link", proof.args)
    _assert_challenger_won(suite, parties, task_id, dispute_id, G.END_LINK)


def test_link_before__trace_of_another_state(suite, parties):
    base = T.honest_play()
    demo = base.demo
    later = T._state_at(demo, base.demo.weights, 0, base.step + 1)
    wrong = step_trace(demo.graph, demo.task, demo.dataset, later, base.step).trace
    play = _with_trace(base, wrong)
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    proof = _final(suite, dispute_id, play)
    assert proof.kind == "link" and proof.args[4] is False
    _prove(suite, parties.verifier, "link", proof.args)
    _assert_challenger_won(suite, parties, task_id, dispute_id, G.END_LINK)


def test_element__forged_update_is_rejected_by_the_judge(suite, parties):
    play = T.cheat_play("forged")
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: links hold"):
        suite.checker.prove_link_mismatch(*M.link_args(suite.game.address, dispute_id, play.step_data(), True))
    proof = _final(suite, dispute_id, play)
    assert proof.kind == "element" and "sgd" in proof.detail
    _prove(suite, parties.verifier, "element", proof.args)
    _assert_challenger_won(suite, parties, task_id, dispute_id, G.END_ELEMENT)


def test_data_x__swapped_row(suite, parties):
    play = T.cheat_play("bad_data")
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    proof = _final(suite, dispute_id, play)
    assert proof.kind == "data" and proof.detail == "data_x row 0"
    _prove(suite, parties.verifier, "data", proof.args)
    _assert_challenger_won(suite, parties, task_id, dispute_id, G.END_DATA)


def test_data_y__wrong_label(suite, parties):
    base = T.honest_play()
    trace = list(base.trace)
    graph = base.demo.graph
    y = trace[graph.data_y_node].clone()
    y[3] = (y[3] + 1) % 3
    trace[graph.data_y_node] = y
    play = _with_trace(base, trace)
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    proof = _final(suite, dispute_id, play)
    assert proof.kind == "data" and proof.detail == "data_y row 3"
    _prove(suite, parties.verifier, "data", proof.args)
    _assert_challenger_won(suite, parties, task_id, dispute_id, G.END_DATA)


def _corrupt_one_per_op(play: T.Play) -> list[tuple[int, int]]:
    seen, picks = set(), []
    for node in play.demo.graph.nodes:
        if node.op in ("param", "data_x", "data_y") or node.op in seen:
            continue
        seen.add(node.op)
        picks.append((node.id, node.numel - 1))
    return picks


@pytest.mark.parametrize("which", range(8))
def test_element__a_corrupted_element_of_every_op(suite, parties, which):
    """Every op the compiler emits (`add` no longer: reductions are not folded in the graph; an
    element of a reduction longer than 64 terms is dissected, test_arbitration_reduction.py)."""
    base = T.honest_play(name="tiny")
    picks = _corrupt_one_per_op(base)
    assert len(picks) == 8  # matmul add_bias relu relu_grad softmax_xent(+grad) sum_rows sgd
    node_id, index = picks[which]
    trace = list(base.trace)
    bad = trace[node_id].clone().reshape(-1)
    bad[index] = bad[index] + 0.5
    trace[node_id] = bad.reshape(trace[node_id].shape)
    play = _with_trace(base, trace)
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    args = M.element_args(suite.game.address, dispute_id, play.step_data(), node_id, index)
    _prove(suite, parties.verifier, "element", args)
    _assert_challenger_won(suite, parties, task_id, dispute_id, G.END_ELEMENT)


# ------------------------------------------------------------------------------- the honest solver cannot be beaten


@pytest.mark.parametrize("name", ["tiny", "long"])
def test_honest_trace__no_proof_succeeds(suite, parties, name):
    play = T.honest_play(name=name)
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    data, game = play.step_data(), suite.game.address
    assert _final(suite, dispute_id, play) is None
    with boa.env.prank(parties.verifier):
        for after in (False, True):
            with boa.reverts("arbitration: links hold"):
                suite.checker.prove_link_mismatch(*M.link_args(game, dispute_id, data, after))
        graph = play.demo.graph
        for node_id in (graph.data_x_node, graph.data_y_node):
            for row in (0, play.task.batch_size - 1):
                with boa.reverts("arbitration: data row matches"):
                    suite.checker.prove_data_mismatch(*M.data_args(game, dispute_id, data, node_id, row, play.step))
        for node in graph.nodes:
            if node.op in ("param", "data_x", "data_y"):
                continue
            for index in {0, node.numel // 2, node.numel - 1}:
                # a reduction longer than 64 terms is not judged in one step (it is dissected:
                # test_arbitration_reduction.py); the checker refuses it
                reason = ("arbitration: element is consistent" if not M.is_long(node) else
                          "arbitration: bad descriptor" if node.op == "matmul" else "judge: reduction too long")
                with boa.reverts(reason):
                    suite.checker.prove_element(*M.element_args(game, dispute_id, data, node.id, index))
    assert suite.game.disputes(dispute_id).phase == G.PROVE
    boa.env.time_travel(seconds=T.CLOCK + 1)
    suite.game.timeout(dispute_id)
    assert suite.game.disputes(dispute_id).phase == G.SOLVER_WON
    assert suite.market.tasks(task_id).state == TaskState.ACCEPTED
    assert T.verdict(suite, dispute_id) == (True, False, 1)


# ------------------------------------------------------------------------------- what each proof checks


@pytest.fixture
def forged(suite, parties):
    play = T.cheat_play("forged")
    _, dispute_id = T.play_to_prove(suite, parties, play)
    proof = _final(suite, dispute_id, play)
    return play, dispute_id, proof.args


def _expect(suite, sender, kind, args, reason):
    with boa.env.prank(sender), boa.reverts(reason):
        getattr(suite.checker, PROVE[kind])(*args)


def test_proof__names_the_trace_root_and_the_task(suite, parties, forged):
    _, _, args = forged
    bad = list(args)
    bad[2] = keccak(b"another trace")
    _expect(suite, parties.verifier, "element", bad, "arbitration: wrong trace root")
    bad = list(args)
    bad[3] = (*args[3][:-1], 99)
    _expect(suite, parties.verifier, "element", bad, "arbitration: commitments do not match the task")


def test_proof__openings_are_verified(suite, parties, forged):
    _, _, args = forged
    n, nodes, siblings = args[6]
    desc = list(nodes[0])
    desc[4] = [12345]  # another lr
    bad = list(args)
    bad[6] = (n, [tuple(desc), *nodes[1:]], siblings)
    _expect(suite, parties.verifier, "element", bad, "arbitration: graph opening invalid")
    roots, tsib = args[7]
    bad = list(args)
    bad[7] = ([keccak(b"x"), *roots[1:]], tsib)
    _expect(suite, parties.verifier, "element", bad, "arbitration: trace opening invalid")
    positions, leaves, lsib = args[8]
    leaf = bytearray(leaves[0])
    leaf[0] ^= 1
    bad = list(args)
    bad[8] = (positions, [bytes(leaf)], lsib)
    _expect(suite, parties.verifier, "element", bad, "arbitration: tensor opening invalid")
    bad = list(args)
    bad[5] = 10_000
    _expect(suite, parties.verifier, "element", bad, "arbitration: no such element")
    bad = list(args)
    bad[4] = 5  # a node that is not opened
    _expect(suite, parties.verifier, "element", bad, "arbitration: node not opened")


def test_proof__input_nodes_have_no_one_step_check(suite, parties, forged):
    play, dispute_id, _ = forged
    data = play.step_data()
    args = list(M.element_args(suite.game.address, dispute_id, data, 19, 0))
    args[6] = M.graph_opening(play.demo.graph, [0])
    args[7] = M.trace_opening(data.roots, [0])
    args[4] = 0
    _expect(suite, parties.verifier, "element", args, "arbitration: node has no one-step check")


def test_data_proof__checks(suite, parties, forged):
    play, dispute_id, _ = forged
    data, game = play.step_data(), suite.game.address
    graph = play.demo.graph
    args = list(M.data_args(game, dispute_id, data, graph.data_x_node, 0, play.step))
    bad = list(args)
    bad[7] = play.task.batch_size
    _expect(suite, parties.verifier, "data", bad, "arbitration: no such row")
    x_row, label, siblings = args[8]
    bad = list(args)
    bad[8] = (x_row, label + 1, siblings)
    _expect(suite, parties.verifier, "data", bad, "arbitration: dataset row invalid")
    other = list(M.element_args(game, dispute_id, data, 19, 0))
    bad = list(args)
    bad[4] = M.graph_opening(graph, [19])
    bad[5] = M.trace_opening(data.roots, [19])
    _expect(suite, parties.verifier, "data", bad, "arbitration: not a data node")
    assert other  # the element arguments of node 19 build fine


def test_link_proof__must_be_the_parameter_block(suite, parties, forged):
    play, dispute_id, _ = forged
    data, graph = play.step_data(), play.demo.graph
    args = list(M.link_args(suite.game.address, dispute_id, data, False))
    bad = list(args)
    bad[5] = M.graph_opening(graph, [0, 1, 2])  # three params and a fourth one next: not the block
    bad[6] = M.trace_opening(data.roots, [0, 1])
    _expect(suite, parties.verifier, "link", bad, "arbitration: not the parameter block")
    args = list(M.link_args(suite.game.address, dispute_id, data, True))
    n = len(graph.nodes)
    bad = list(args)
    bad[5] = M.graph_opening(graph, list(range(n - 3, n)))
    bad[6] = M.trace_opening(data.roots, list(range(n - 2, n)))
    _expect(suite, parties.verifier, "link", bad, "arbitration: not the update block")


# ------------------------------------------------------------------------------- front-running, wrong phase


def test_front_run__nobody_but_the_recorded_challenger_can_use_a_proof(suite, parties, forged):
    _, _, args = forged
    for thief in (parties.stranger, parties.whistleblower, parties.solver, parties.submitter):
        _expect(suite, thief, "element", args, "arbitration: caller is not the challenger")
    _prove(suite, parties.verifier, "element", args)
    [ended] = T.events(suite.checker, "DisputeEnded")
    assert T.verdict(suite, ended.dispute_id) == (False, True, 1)
    assert suite.game.disputes(ended.dispute_id).challenger == parties.verifier
    _expect(suite, parties.verifier, "element", args, "arbitration: dispute closed")


def test_proof__before_the_trace__wrong_phase(suite, parties):
    play = T.cheat_play("forged")
    _, dispute_id = T.open_dispute(suite, parties, play.demo, play.checkpoint_roots, play.segment)
    args = M.link_args(suite.game.address, dispute_id, play.step_data(), True)
    _expect(suite, parties.verifier, "link", args, "arbitration: wrong phase")


def test_proof__after_the_clock__expired(suite, parties, forged):
    _, dispute_id, args = forged
    boa.env.time_travel(seconds=suite.game.deadline(dispute_id) - boa.env.timestamp + 1)
    _expect(suite, parties.verifier, "element", args, "arbitration: clock expired")
    suite.game.timeout(dispute_id)
    assert suite.game.disputes(dispute_id).phase == G.SOLVER_WON


def test_stub_judge__verdict_goes_through_the_interface(suite, parties):
    stub = T.deploy_game_suite(judge=T.stub_judge_deployer().deploy())
    who = T.make_parties(stub.market)
    play = T.honest_play()
    _, dispute_id = T.play_to_prove(stub, who, play, challenger=who.verifier)
    data = play.step_data()
    node = play.demo.graph.nodes[play.demo.graph.output_nodes[0]]
    values = data.trace[node.id].reshape(-1)
    negative = int(torch.nonzero(values < 0)[0])
    positive = int(torch.nonzero(values > 0)[0])
    with boa.env.prank(who.verifier):
        with boa.reverts("arbitration: element is consistent"):
            stub.checker.prove_element(*M.element_args(stub.game.address, dispute_id, data, node.id, positive))
        stub.checker.prove_element(*M.element_args(stub.game.address, dispute_id, data, node.id, negative))
    assert stub.game.disputes(dispute_id).phase == G.CHALLENGER_WON


# ------------------------------------------------------------------------------- data availability


def test_demand_and_post__values_reach_the_challenger(suite, parties):
    play = T.honest_play()
    _, dispute_id = T.play_to_prove(suite, parties, play)
    graph, game = play.demo.graph, suite.game.address
    trace_root = T.trace_root_of(play.trace)
    for node_id, start, count in ((graph.data_y_node, 2, 5), (graph.output_nodes[0], 10, 40)):
        with boa.env.prank(parties.verifier):
            suite.checker.demand_elements(*M.demand_args(game, dispute_id, play.task, graph, trace_root, node_id, start, count),
                                          value=suite.game.demand_fee(count))
        [demanded] = T.events(suite.checker, "ElementsDemanded")
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
    graph, game = play.demo.graph, suite.game.address
    trace_root = T.trace_root_of(play.trace)
    node = graph.output_nodes[0]
    numel = graph.nodes[node].numel
    with boa.env.prank(parties.verifier):
        for start, count in ((0, 0), (0, G.MAX_DEMAND + 1), (numel - 1, 2), (numel, 1)):
            with boa.reverts("arbitration: bad element range"):
                suite.checker.demand_elements(*M.demand_args(game, dispute_id, play.task, graph, trace_root, node, start, count))
        with boa.reverts("arbitration: wrong trace root"):
            suite.checker.demand_elements(*M.demand_args(game, dispute_id, play.task, graph, keccak(b"t"), node, 0, 1))
    with boa.env.prank(parties.solver), boa.reverts("arbitration: caller is not the challenger"):
        suite.checker.demand_elements(*M.demand_args(game, dispute_id, play.task, graph, trace_root, node, 0, 1))


def test_post__checks_and_silence_loses(suite, parties):
    play = T.honest_play()
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    graph, game = play.demo.graph, suite.game.address
    trace_root = T.trace_root_of(play.trace)
    node = graph.output_nodes[0]
    with boa.env.prank(parties.verifier):
        suite.checker.demand_elements(*M.demand_args(game, dispute_id, play.task, graph, trace_root, node, 0, 8),
                                      value=suite.game.demand_fee(8))
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
