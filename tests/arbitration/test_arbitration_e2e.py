"""End to end on titanoboa with real data: Arbitration + ProgramChecker + ProofChecker + TensorReader +
the judges behind the stand-in market, played over the MLP preset's program with real state roots,
real traces and real proofs.

* tiny 8-8-3 task: the fabricating solver loses (output link mismatch, or the judge rejects its update);
  an honest solver challenged by a malicious challenger wins by timeout; a solver that withholds
  its trace must post it element by element, and the challenger rebuilds the trace from the posted
  values and wins; the market is told the verdict and whether it was proven.
* digits 64-32-10 task: every kind of final proof and a demand/post pair, each whole dispute
  under 10,000,000 gas.
"""

from __future__ import annotations

import dataclasses
import functools

import arbitration_testing as T
import boa
import pytest
import torch

from offchain.chain.suite import TaskState
from offchain.dispute import game as G
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.ml import cheats
from offchain.ml.commit import merkle_root, tensor_root
from offchain.ml.program import trace_roots

GAS_LIMIT = 10_000_000


def test_tiny__fabricating_solver_loses_by_proof(suite, parties):
    for kind in ("honest", "forged"):
        with boa.env.anchor():
            play = T.fabricated_play(T.tiny_demo(), T.cheat_run(), 1, kind)
            result = T.full_dispute(suite, parties, play)
            assert not result["solver_won"] and result["phase"] == G.CHALLENGER_WON
            assert suite.market.tasks(result["task_id"]).state == TaskState.OPEN
            assert T.verdict(suite, result["dispute_id"]) == (False, True, 1)


def test_tiny__honest_solver_beats_a_malicious_challenger(suite, parties):
    play = T.genuine_play(T.tiny_demo(), T.honest_run(), 1, 2)
    # the challenger finds no inconsistency in the honest trace (every final proof reverts, see
    # test_program_disputes.py) and runs out of clock
    result = T.full_dispute(suite, parties, play)
    assert result["solver_won"] and "timeout" in result["gas"]
    assert suite.market.tasks(result["task_id"]).state == TaskState.ACCEPTED
    assert T.verdict(suite, result["dispute_id"]) == (True, False, 1)


def test_tiny__withheld_trace_is_rebuilt_from_posted_elements(suite, parties):
    """The cheater publishes nothing but roots. The challenger demands every node output; the
    solver must post each one (or lose by timeout); the challenger rebuilds the trace from the
    events, checks it against the posted roots, finds the forged update and wins."""
    play = T.fabricated_play(T.tiny_demo(), T.cheat_run(), 1, "forged")
    program, game = play.program, suite.game.address
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    trace_root = T.trace_root_of(play.trace)
    rebuilt = []
    for node in program.nodes:
        tensor = play.trace[node.id]
        values, start = [], 0
        while start < node.numel:
            count = min(G.MAX_DEMAND, node.numel - start)
            with boa.env.prank(parties.verifier):
                suite.programs.demand_elements(*P.demand_args(game, dispute_id, play.step_data(), node.id, start, count),
                                               value=suite.game.demand_fee(count))
            # the solver answers: only what it posts reaches the challenger
            with boa.env.prank(parties.solver):
                suite.checker.post_elements(*M.post_args(game, dispute_id, play.trace, node.id, start, count))
            [posted] = T.events(suite.checker, "ElementsPosted")
            values.append(M.decode_values(list(posted.values), tensor.dtype))
            start += count
        rebuilt.append(torch.cat(values).reshape(node.shape))
        assert tensor_root(rebuilt[-1]) == posted.tensor_root
    assert merkle_root(trace_roots(rebuilt)) == trace_root
    data = dataclasses.replace(play.step_data(), trace=rebuilt)
    d = suite.game.disputes(dispute_id)
    assert d.demands == len(program.nodes)
    proof = P.find_program_proof(game, dispute_id, data, d.state_after)
    assert proof is not None and proof.kind == "element"
    with boa.env.prank(parties.verifier):
        suite.programs.prove_element(*proof.args)
    assert suite.game.disputes(dispute_id).phase == G.CHALLENGER_WON
    assert suite.market.tasks(task_id).state == TaskState.OPEN
    assert T.verdict(suite, dispute_id) == (False, True, 1)


# ------------------------------------------------------------------------------- digits: gas


@functools.cache
def digits():
    demo = T.digits_demo(steps=20, k=10, batch_size=32)
    return demo, cheats.honest_run(demo), cheats.fabricate_segments(demo, [1], mode="noise")


def _corrupted(play: T.Play, op: str) -> tuple[T.Play, int, int]:
    node = next(n for n in play.program.nodes if n.op == op)
    trace = list(play.trace)
    bad = trace[node.id].clone().reshape(-1)
    index = node.numel - 1
    bad[index] += 1.0
    trace[node.id] = bad.reshape(node.shape)
    return dataclasses.replace(play, trace=trace), node.id, index


@pytest.mark.parametrize("case", ["link", "element:sub", "element:addmm", "element:log_softmax_grad", "data",
                                  "honest+demand"])
def test_digits__whole_dispute_under_10M_gas(suite, parties, case):
    demo, honest, cheat = digits()
    x_node = demo.graph.program.leaf("data_x")
    demands = []
    proof = None
    if case == "link":
        play = T.fabricated_play(demo, cheat, 1, "honest")
    elif case.startswith("element"):
        base = T.genuine_play(demo, honest, 1, 4)
        play, node_id, index = _corrupted(base, case.split(":")[1])
        proof = "element"
    elif case == "data":
        base = T.genuine_play(demo, honest, 1, 4)
        trace = list(base.trace)
        x = trace[x_node].clone()
        x[5] = demo.dataset.x[0]
        trace[x_node] = x
        play = dataclasses.replace(base, trace=trace)
    else:
        play = T.genuine_play(demo, honest, 1, 4)
        demands = [(x_node, 0, 512), (demo.graph.program.outputs[0], 1024, 512)]
    if proof == "element":  # built once the dispute id is known
        game = suite.game
        dispute_id = game.dispute_count() + 1
        data = play.step_data()
        proof = P.ProgramProof("element", "prove_element", P.element_args(game.address, dispute_id, data, node_id, index))
    result = T.full_dispute(suite, parties, play, proof=proof, demands=demands)
    assert result["solver_won"] == (case == "honest+demand")
    assert result["total_gas"] < GAS_LIMIT, result["gas"]
    for move, gas in result["gas"].items():
        assert gas < 2_000_000, (move, gas)
