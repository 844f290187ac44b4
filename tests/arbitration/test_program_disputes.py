"""Disputes over a training program's step (`contracts/ProgramChecker.vy`, docs/arbitration.md §11):
real MLP, CNN, GPT and dropout programs bound to tasks, one step traced honestly, then tampered.
A wrong element of a mid-network node loses to `prove_element` (the program judge through the
index map's reads, two-stage ops included); a wrong state, const, hyper, rng or data leaf loses to
`prove_leaf_link`; a revealed next state that is not the program's outputs loses to
`prove_output_link`. On the honest trace every proof reverts, and neither checker accepts the
other format's task."""

from __future__ import annotations

import os

import arbitration_testing as T
import boa
import pytest
import torch
from program_testing import STEP, first_node, setup, tampered, to_prove

from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.dispute import program_rules as R
from offchain.ml import cheats
from offchain.ml.errors import MLError
from offchain.ml.commit import merkle_root, tensor_root
from offchain.ml.program import Program, trace_roots
from offchain.ml.train import step_trace

GAS = os.environ.get("ARB_PROGRAM_GAS")  # print the gas of each winning proof


def wins(suite, parties, dispute_id: int, fn: str, args, reason: int, what: str) -> None:
    """The challenger's proof ``fn`` ends the dispute: the challenger wins, proven, for ``reason``."""
    gas = T.tx_gas(suite.prover(fn), fn, parties.verifier, *args)
    if GAS:
        size = len(getattr(suite.prover(fn), fn).prepare_calldata(*args))
        print(f"\n{what}: {gas:,} gas (transaction), calldata {size:,} bytes")
    assert T.verdict(suite, dispute_id) == (False, True, 1)
    [ended] = T.events(suite.prover(fn), "DisputeEnded")[-1:]
    assert ended.reason == reason


def fails(parties, prove, message: str) -> None:
    with boa.env.prank(parties.verifier):
        with boa.reverts(message):
            prove()


# ------------------------------------------------------------------------------- one element


#: (family, op, occurrence, element) of a mid-network node whose reads fit the chain
ELEMENTS = [
    ("mlp", "addmm", 0, 5),          # hidden layer: bias + a 12-term row·column
    ("mlp", "relu", 0, 3),
    ("mlp", "nll_loss", 0, 0),       # two-stage: the labels, then logp[b, y_b]
    ("cnn", "conv2d", 0, 37),        # 9 taps of the first convolution + bias
    ("cnn", "max_pool2d_indices", 0, 5),  # an int64 output
    ("gpt", "embedding", 0, 7),      # two-stage: the token, then its row
    ("gpt", "safe_softmax", 0, 13),  # a masked attention row of 12
    ("dropout", "bernoulli", 0, 9),  # a keep-mask element from the rng leaf
]


@pytest.mark.parametrize("family, op, skip, index", ELEMENTS, ids=[f"{f}-{o}" for f, o, _, _ in ELEMENTS])
def test_prove_element__a_wrong_element_loses_the_honest_one_stands(suite, parties, family, op, skip, index):
    s = setup(family)
    node_id = first_node(s.program, op, skip)
    node = s.program.nodes[node_id]
    assert node.op in R.RULES and 0 < node_id < len(s.program.nodes) - 1
    honest = P.ProgramStep(s.demo.task, s.program, list(s.trace), STEP)
    reads, values = P.element_reads(honest, node_id, index)
    ins = [s.program.nodes[i] for i in node.inputs]
    claimed = int(P._flat(s.trace[node_id])[index])
    assert R.check(node, ins, index, values, claimed)

    dispute_id = to_prove(suite, parties, s, s.trace)
    args = P.element_args(suite.game.address, dispute_id, s.data(s.trace), node_id, index)
    fails(parties, lambda: suite.programs.prove_element(*args), "arbitration: element is consistent")

    bad = tampered(s.trace, node_id, index)
    assert not R.check(node, ins, index, values, int(P._flat(bad[node_id])[index]))
    dispute_id = to_prove(suite, parties, s, bad)
    args = P.element_args(suite.game.address, dispute_id, s.data(bad), node_id, index)
    if family == "mlp":  # the honest challenger's search finds exactly this proof
        found = P.find_program_proof(suite.game.address, dispute_id, s.data(bad), s.after_root(bad))
        assert found.fn == "prove_element" and found.args[5:7] == (node_id, index)
    wins(suite, parties, dispute_id, "prove_element", args, T.END_ELEMENT,
         f"prove_element {family} {op}")


def test_find_program_proof__nothing_to_prove_on_the_honest_trace():
    s = setup("mlp")
    assert P.find_program_proof("0x" + "00" * 20, 1, s.data(s.trace), s.after_root(s.trace)) is None


@pytest.mark.parametrize("family, op", [("mlp", None), ("gpt", "safe_softmax"), ("gpt", "layer_norm")])
def test_element_cheat__its_own_trace_has_one_wrong_element_and_loses_to_prove_element(suite, parties, family, op):
    """`cheats.corrupt_element`: the cheater re-derives the step's trace as it trained (the
    corruption replayed), so every link holds and the one wrong element is all a challenger finds;
    by default in the longest matmul-like node, or in the last node of ``op`` (attention weights,
    a normalised row)."""
    s = setup(family)
    run = cheats.corrupt_element(s.demo, segment=0, op=op)
    wrong = run.corruption
    assert wrong.step == STEP and s.program.nodes[wrong.node].op == (op or "addmm")
    trace = step_trace(cheats.corrupted(s.demo, wrong).graph, s.demo.task, s.demo.dataset,
                       run.result.checkpoints[0].params, STEP).trace
    assert s.after_root(trace) == run.proof.checkpoint_roots[1]  # its trace is its published checkpoint
    data = s.data(trace)
    rejected = []
    for node in s.program.nodes:
        if node.op not in P.ON_CHAIN:  # leaves: linked, and checked by find_program_proof below
            continue
        ins = [s.program.nodes[i] for i in node.inputs]
        for index in P._suspects(data, node):
            _, values = P.element_reads(data, node.id, index)
            if not R.check(node, ins, index, values, int(P._flat(trace[node.id])[index])):
                rejected.append((node.id, index))
    assert rejected == [(wrong.node, wrong.index)]

    dispute_id = to_prove(suite, parties, s, trace)
    found = P.find_program_proof(suite.game.address, dispute_id, data, s.after_root(trace))
    assert found.fn == "prove_element" and found.args[5:7] == (wrong.node, wrong.index)
    wins(suite, parties, dispute_id, "prove_element", found.args, T.END_ELEMENT, "prove_element: the element cheat")


def test_prove_element__openings_must_be_the_named_reads(suite, parties):
    s = setup("mlp")
    node_id = first_node(s.program, "addmm")
    bad = tampered(s.trace, node_id, 5)
    dispute_id = to_prove(suite, parties, s, bad)
    game = suite.game.address
    args = list(P.element_args(game, dispute_id, s.data(bad), node_id, 5))
    # each read opened in its own input's output: swapped openings do not verify
    fails(parties, lambda: suite.programs.prove_element(*args[:-1], args[-1][::-1]), "arbitration: tensor opening invalid")
    fails(parties, lambda: suite.programs.prove_element(*args[:-1], args[-1][:-1]), "arbitration: wrong number of reads")
    # a leaf has no one-step check
    leaf = P.element_args(game, dispute_id, s.data(bad), node_id, 5)
    opening = P.program_opening(s.program, [0])
    fails(parties, lambda: suite.programs.prove_element(*leaf[:5], 0, 0, opening, M.trace_opening(s.data(bad).roots, [0]),
                                                        leaf[9], leaf[10]),
          "arbitration: node has no one-step check")
    # descriptors of another program
    forged = list(args)
    forged[4] = (bytes(32), *args[4][1:])
    fails(parties, lambda: suite.programs.prove_element(*forged), "arbitration: program does not match the task")


# --------------------------------------------------------------------------------------- links


LEAVES = [("mlp", "state", 1), ("mlp", "const", 0), ("mlp", "hyper", 0), ("mlp", "data_x", 0),
          ("mlp", "data_y", 0), ("dropout", "rng", 0), ("gpt", "state", 30)]


@pytest.mark.parametrize("family, op, skip", LEAVES, ids=[f"{f}-{o}" for f, o, _ in LEAVES])
def test_prove_leaf_link__a_wrong_leaf_loses_the_honest_one_stands(suite, parties, family, op, skip):
    s = setup(family)
    node_id = first_node(s.program, op, skip)
    row = 2 if op.startswith("data") else 0
    holds = "arbitration: data row matches" if op.startswith("data") else "arbitration: links hold"
    dispute_id = to_prove(suite, parties, s, s.trace)
    args = P.leaf_args(suite.game.address, dispute_id, s.data(s.trace), node_id, row)
    fails(parties, lambda: suite.program_links.prove_leaf_link(*args), holds)

    index = row * s.program.nodes[node_id].shape[1] + 1 if op == "data_x" else row if op == "data_y" else 0
    bad = tampered(s.trace, node_id, index)
    dispute_id = to_prove(suite, parties, s, bad)
    args = P.leaf_args(suite.game.address, dispute_id, s.data(bad), node_id, row)
    found = P.find_program_proof(suite.game.address, dispute_id, s.data(bad), s.after_root(bad))
    assert found.fn == "prove_leaf_link" and found.args == args
    reason = T.END_DATA if op.startswith("data") else T.END_LINK
    wins(suite, parties, dispute_id, "prove_leaf_link", args, reason,
         f"prove_leaf_link {family} {op}")


def test_prove_leaf_link__openings_are_checked(suite, parties):
    s = setup("mlp")
    bad = tampered(s.trace, first_node(s.program, "state", 1))
    dispute_id = to_prove(suite, parties, s, bad)
    game = suite.game.address
    args = list(P.leaf_args(game, dispute_id, s.data(bad), first_node(s.program, "state", 1)))
    fails(parties, lambda: suite.program_links.prove_leaf_link(*args[:8], args[8][:-1], *args[9:]),
          "arbitration: outputs do not match the program")
    fails(parties, lambda: suite.program_links.prove_leaf_link(*args[:9], bytes(32), *args[10:]),
          "arbitration: state opening invalid")
    hyper = P.leaf_args(game, dispute_id, s.data(bad), first_node(s.program, "hyper"))
    positions, leaves, siblings = hyper[7]
    forged = (positions, [bytes(len(leaves[0]))], siblings)
    fails(parties, lambda: suite.program_links.prove_leaf_link(*hyper[:7], forged, *hyper[8:]),
          "arbitration: tensor opening invalid")
    view = first_node(s.program, "view")
    fails(parties, lambda: suite.program_links.prove_leaf_link(
        *args[:5], P.program_opening(s.program, [view]), M.trace_opening(s.data(bad).roots, [view]), *args[7:]),
          "arbitration: not a linked leaf")


@pytest.mark.parametrize("family", ["mlp", "cnn", "gpt", "gpt-deep"])
def test_prove_output_link__a_revealed_state_that_is_not_the_outputs_loses(suite, parties, family):
    """The outputs are opened in increasing runs, each within one trace opening's bounds: one run
    for the MLP and CNN, several for the GPTs (54 and 162 state tensors scattered over the trace)."""
    s = setup(family)
    runs = M.opening_runs(len(s.program.nodes), s.program.outputs)
    assert [i for run in runs for i in run] == list(s.program.outputs)
    assert (len(runs) > 1) == family.startswith(("cnn", "gpt"))
    dispute_id = to_prove(suite, parties, s, s.trace)
    args = P.output_link_args(suite.game.address, dispute_id, s.data(s.trace))
    fails(parties, lambda: suite.program_links.prove_output_link(*args), "arbitration: links hold")

    forged = s.after_root(tampered(s.trace, s.program.outputs[-1]))
    dispute_id = to_prove(suite, parties, s, s.trace, after=forged)
    args = P.output_link_args(suite.game.address, dispute_id, s.data(s.trace))
    assert P.find_program_proof(suite.game.address, dispute_id, s.data(s.trace), forged).args == args
    *head, traces = args
    fails(parties, lambda: suite.program_links.prove_output_link(*head, traces[:-1]), "arbitration: trace opening invalid")
    (roots, siblings), *rest = traces
    moved = (roots[1:] + roots[:1], siblings)  # the right roots, at the wrong outputs
    fails(parties, lambda: suite.program_links.prove_output_link(*head, [moved, *rest]), "arbitration: trace opening invalid")
    wins(suite, parties, dispute_id, "prove_output_link", args, T.END_LINK,
         f"prove_output_link {family} ({len(s.program.outputs)} state tensors, {len(runs)} openings)")


# ------------------------------------------------------------------------------ data availability


def test_demand__a_program_node_is_demanded_here_and_answered_through_the_proof_checker(suite, parties):
    s = setup("cnn")
    dispute_id = to_prove(suite, parties, s, s.trace)
    game, data = suite.game.address, s.data(s.trace)
    trace = [data.tensor(i) for i in range(len(s.trace))]
    for node_id, start, count in ((first_node(s.program, "max_pool2d_indices"), 3, 20),
                                  (first_node(s.program, "conv2d"), 100, 300)):
        with boa.env.prank(parties.verifier):
            suite.programs.demand_elements(*P.demand_args(game, dispute_id, data, node_id, start, count),
                                           value=suite.game.demand_fee(count))
        assert suite.game.to_move(dispute_id) == parties.solver
        with boa.env.prank(parties.solver):
            suite.checker.post_elements(*M.post_args(game, dispute_id, trace, node_id, start, count))
        [posted] = T.events(suite.checker, "ElementsPosted")
        values = M.decode_values(list(posted.values), trace[node_id].dtype)
        assert torch.equal(values, trace[node_id].reshape(-1)[start:start + count])
        assert suite.game.to_move(dispute_id) == parties.verifier
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: one node per demand"):
            suite.programs.demand_elements(*P.demand_args(game, dispute_id, data, 0, 0, 1)[:5],
                                           P.program_opening(s.program, [0, 1]), 0, 1, value=suite.game.demand_fee(1))


def test_reports__only_the_game_own_program_checker_concludes(suite, parties):
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: caller is not the checker"):
            suite.game.conclude(1, parties.verifier, T.END_ELEMENT)


def test_reports__each_program_checker_concludes_only_for_its_own_proofs(suite, parties):
    """The element checker ends a dispute for a wrong element only; the link checker for a link or
    a data row only."""
    for checker, reasons in ((suite.programs, (T.END_LINK, T.END_DATA)), (suite.program_links, (T.END_ELEMENT,))):
        for reason in reasons:
            with boa.env.prank(checker.address):
                with boa.reverts("arbitration: bad reason"):
                    suite.game.conclude(1, parties.verifier, reason)


# ------------------------------------------------------------------------ a bool output out of range


def test_prove_element__a_bool_element_other_than_0_or_1_loses(suite, parties):
    """A hand-made program (state x, then x > x as bool): a committed 2 is wrong without reads, a
    committed 1 loses to the judge, the honest 0 stands."""
    from eth_abi import encode

    from offchain.ml.commit import keccak256
    from offchain.ml.ops import Node
    from offchain.ml.program import StateSlot
    from offchain.ml.task import COMMITMENT_TYPES

    nodes = (Node(0, "state", "f32", (), (4,), (0,)), Node(1, "gt", "bool", (0, 0), (4,)))
    program = Program(nodes, (StateSlot("x", (4,), "param"),), (0,), 0, {}, ())
    x = torch.tensor([1.0, -2.0, 0.5, 3.0])
    hyper_root = keccak256(b"no hyper table")
    graph = keccak256(encode(["bytes32", "bytes32"], [program.root, hyper_root]))
    before = tensor_root(x)
    commitments = (bytes(32), graph, bytes(32), 1, before, 5, 1, 2, 1)
    spec_hash = keccak256(encode(COMMITMENT_TYPES, commitments))
    game = suite.game

    def dispute(mask: list[int]) -> tuple[int, P.ProgramStep]:
        trace = [x, torch.tensor(mask, dtype=torch.int64)]
        checkpoints = [before, before, bytes(32)]
        _, dispute_id = T.post_and_challenge(suite, parties, spec_hash, checkpoints, 0)
        with boa.env.prank(parties.solver):
            game.reveal_segment(dispute_id, 0, commitments, [before, before], M.multiproof(checkpoints, [0, 1]))
        with boa.env.prank(parties.verifier):
            game.pick_step(*M.pick_step_args(dispute_id, [before, before], 0))
        with boa.env.prank(parties.solver):
            game.commit_trace(dispute_id, STEP, merkle_root(trace_roots(trace)))
        return dispute_id, P.ProgramStep(None, program, trace, STEP)

    def args(dispute_id, data, index):
        reads, _ = P.element_reads(data, 1, index)
        return (game.address, dispute_id, data.trace_root, commitments, (program.nodes_root, program.outputs_hash,
                program.links, hyper_root), 1, index, P.program_opening(program, [0, 1]), M.trace_opening(data.roots, [0, 1]),
                M.tensor_opening(data.trace[1], [index]), [M.tensor_opening(x, idx) for _, idx in reads])

    dispute_id, data = dispute([0, 0, 0, 0])
    fails(parties, lambda: suite.programs.prove_element(*args(dispute_id, data, 2)), "arbitration: element is consistent")
    for mask in ([0, 0, 2, 0], [0, 0, 1, 0]):
        dispute_id, data = dispute(mask)
        wins(suite, parties, dispute_id, "prove_element", args(dispute_id, data, 2), T.END_ELEMENT, f"bool {mask[2]}")


def test_element_cheat__an_op_the_program_lacks_is_refused():
    with pytest.raises(MLError, match="the program has no conv2d node to corrupt"):
        cheats.corrupt_element(setup("mlp").demo, op="conv2d")
