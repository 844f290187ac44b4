"""The dissection inside a long softmax-family row (`contracts/ProgramReductionChecker.vy` with
`contracts/ProgramRowJudge.vy`, docs/judge-programs.md §5): on real GPTs with a vocabulary of 100
(the loss's log_softmax row and its gradient) and 80 positions (the attention's masked
safe_softmax row and its gradient), an element of a row longer than the judge's 64 reads is
opened, the solver posts the partials of the row's statistics over chunks of 64 entries, and the
challenger proves one chunk wrong or the element outside its window given the totals (the fold,
`prove_program_row`). A wrong element loses either way, the honest element and partials stand,
and every move stays below 5 M gas."""

from __future__ import annotations

import arbitration_testing as T
import boa
import pytest
from program_testing import (
    DISPUTE_GAS,
    GAS,
    MOVE_GAS,
    answer,
    ended,
    forged_row_partials,
    gas,
    nudged,
    open_reduction,
    post,
    row_element,
    setup,
    tampered,
    to_prove,
    whole_dispute,
)

from offchain.dispute import judge as J
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.dispute import program_rules as R
from offchain.dispute import rows
from offchain.ml.ops import OPS

#: (program, op) of nodes whose rows are longer than 64 entries
ROWS = [("gpt-vocab", "log_softmax"), ("gpt-vocab", "log_softmax_grad"), ("gpt-seq", "safe_softmax"),
        ("gpt-seq", "softmax_grad")]
IDS = [f"{p}-{o}" for p, o in ROWS]


def opened(suite, parties, s, trace, node_id: int, index: int) -> int:
    dispute_id = open_reduction(suite, parties, s, trace, node_id, index)
    assert suite.game.reductions(dispute_id).op == rows.ROW_BASE + OPS[s.program.nodes[node_id].op].code
    return dispute_id


# ------------------------------------------------------------------------------- the honest solver


@pytest.mark.parametrize("program, op", ROWS, ids=IDS)
def test_program_row__the_honest_element_and_partials_stand(suite, parties, program, op):
    s = setup(program)
    node_id, index = row_element(s, op)
    row = P.reduction_call(s.data(s.trace), node_id, index)
    assert row.n > rows.CHUNK and J.folds(row)
    dispute_id = opened(suite, parties, s, s.trace, node_id, index)
    posted = post(suite, parties, dispute_id, row.partials())
    assert answer(suite, s, s.trace, dispute_id, posted) is None
    game = suite.game.address
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: partials add up to the claim"):
            suite.program_reducer.prove_program_row(*P.row_fold_args(game, dispute_id, s.data(s.trace), node_id,
                                                                     index, posted))
        with boa.reverts():  # a row is not a linear reduction: the judge's fold takes none
            suite.program_reducer.prove_fold(*M.prove_fold_args(game, dispute_id, posted))
        for leaf in range(len(posted)):  # every chunk's partial is its exact one
            with boa.reverts("arbitration: partial is correct"):
                suite.program_reducer.prove_program_chunk(
                    *P.chunk_args(game, dispute_id, s.data(s.trace), node_id, index, posted, leaf, 0, len(posted)))


@pytest.mark.parametrize("program, op", ROWS, ids=IDS)
def test_program_row__the_fold_of_honest_partials_is_the_rule_over_the_whole_row(program, op):
    """The reference: a pivoted row's fold accepts exactly what the rule over the whole row
    accepts, a gradient row's at least that (its sum interval is a little wider), on the honest
    value and on values moved by 1 ulp to 2^20 ulps."""
    s = setup(program)
    node_id, index = row_element(s, op)
    node = s.program.nodes[node_id]
    ins = [s.program.nodes[i] for i in node.inputs]
    _, values = P.element_reads(s.data(s.trace), node_id, index)
    honest = int(P._flat(s.trace[node_id])[index])
    seen = set()
    for delta in (0, 1, -1, 40, -40, 1 << 12, -(1 << 12), 1 << 20):
        claimed = (honest + delta) & 0xFFFFFFFF
        whole = R.check(node, ins, index, values, claimed)
        folded = J.folds(rows.row_of(node, values, index, claimed))
        assert folded == whole if op in rows.PIVOTED else (folded or not whole)
        seen.add(folded)
    assert seen == {True, False}


# ------------------------------------------------------------------------------- a wrong element loses


@pytest.mark.parametrize("program, op", ROWS, ids=IDS)
def test_program_row__a_wrong_element_is_found_and_loses_on_the_fold(suite, parties, program, op):
    """The honest challenger's search opens the row of the wrong element; the solver's honest
    partials then hold against the element only if it were right: the fold proves it wrong."""
    s = setup(program)
    node_id, index = row_element(s, op)
    bad = tampered(s.trace, node_id, index)
    assert not J.folds(P.reduction_call(s.data(bad), node_id, index))
    dispute_id = to_prove(suite, parties, s, bad)
    found = P.find_program_proof(suite.game.address, dispute_id, s.data(bad), s.after_root(bad))
    assert (found.kind, found.contract, found.fn) == ("reduction", "program_reducer", "open_program_reduction")
    assert found.args[5:7] == (node_id, index)
    gas(suite, suite.program_reducer, "open_program_reduction", parties.verifier, *found.args)
    posted = post(suite, parties, dispute_id, P.reduction_call(s.data(bad), node_id, index).partials())
    move = answer(suite, s, bad, dispute_id, posted)
    assert (move.kind, move.function, move.contract) == ("fold", "prove_program_row", "program_reducer")
    gas(suite, suite.program_reducer, "prove_program_row", parties.verifier, *move.args)
    ended(suite, dispute_id, T.END_FOLD)


@pytest.mark.parametrize("program, op", ROWS, ids=IDS)
def test_program_row__totals_made_to_hold_the_claim_lose_on_their_chunk(suite, parties, program, op):
    """A solver that moves one chunk's statistic so the totals hold its wrong element loses on
    that chunk, which the chain re-computes exactly; the whole dispute stays below 10 M gas."""
    s = setup(program)
    node_id, index = row_element(s, op)
    bad = nudged(s, node_id, index)
    row = P.reduction_call(s.data(bad), node_id, index)
    last = -(-row.n // rows.CHUNK) - 1

    def forged(data, n, i):
        return forged_row_partials(P.reduction_call(data, n, i), last)

    spent = whole_dispute(suite, parties, s, bad, forged)
    if GAS:
        print("\n" + "\n".join(f"{name}: {used:,}" for name, used in spent.items()))
    assert [name for name in spent if name.startswith("prove_program_chunk")] == [f"prove_program_chunk (chunk {last})"]
    assert sum(spent.values()) < DISPUTE_GAS and max(spent.values()) < MOVE_GAS


# ------------------------------------------------------------------------------- malformed moves


def test_program_row__a_pivot_naming_no_entry_loses_and_rows_past_the_bound_are_refused(suite, parties):
    """Totals whose key names no entry of the row are never an honest solver's: every chunk
    checked against them is wrong. A row longer than 2^15 entries is not opened."""
    s = setup("gpt-vocab")
    node_id, index = row_element(s, "log_softmax")
    row = P.reduction_call(s.data(s.trace), node_id, index)
    honest = row.partials()
    beyond = rows.pivot_key(0x3F800000, row.n)  # an entry past the row's end
    assert rows.pivot_of(beyond, row.n) is None and row.chunk_partial(0, beyond) is None
    dispute_id = opened(suite, parties, s, s.trace, node_id, index)
    forged = [J.Partial(p.x, p.abs, beyond if i == 0 else p.top) for i, p in enumerate(honest)]
    posted = post(suite, parties, dispute_id, forged)
    move = answer(suite, s, s.trace, dispute_id, posted)
    assert (move.kind, move.detail) == ("chunk", "chunk 0")
    with boa.env.prank(parties.verifier):
        suite.program_reducer.prove_program_chunk(*move.args)
    ended(suite, dispute_id, T.END_CHUNK)
    with pytest.raises(R.RuleError, match="softmax row too long"):
        rows.row_of(s.program.nodes[node_id], [[0] * (R.MAX_SOFTMAX_ROW + 1)], 0, 0)
