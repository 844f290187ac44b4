"""Chunk and fold checks of a dissected reduction (docs/judge.md §3.7), differential.

A matmul / sum_rows element longer than 64 terms is judged through exact partials over chunks of
64 terms: every chunk check accepts the honest solver's partial and nothing else, and the fold
check accepts a claim against the honest partials' totals iff the claim is within the any-order
bound of the FULL reduction (up to the documented slack sigma): honest claims computed in any order
(forward, reverse, pairwise, permuted, blocked, float64 then rounded, FMA, flush-to-zero, torch with
1 and 2 threads) pass, claims beyond the bound fail, and the contract agrees with the reference at
the edges of the bound on both sides.
"""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from judge_testing import (
    U,
    honest_dots,
    honest_sums,
    judge_contract,
    linear_bound,
    near_bound_claims,
    reverts,
    round_f32,
    value,
)
from test_judge_linear import make_pair

from offchain.dispute import judge as J

PROFILES = ("unit", "wide", "tiny", "huge", "mixed", "cancel", "zeros")
FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KIND = {J.OP_MATMUL: "matmul", J.OP_SUM_ROWS: "sum_rows"}


def _args(op, a, b):
    return (a, b) if op == J.OP_MATMUL else (a,)


def _chunks(op, a, b):
    for c in range(-(-len(a) // J.MAX_REDUCTION)):
        t0, t1 = J.chunk_bounds(len(a), c)
        yield c, list(a[t0:t1]), list(b[t0:t1]) if op == J.OP_MATMUL else []


def _totals(partials):
    return sum(p.x for p in partials), sum(p.abs for p in partials), max(p.top for p in partials)


def fold_reference(op, a, b, claimed) -> bool:
    return J.check_long(op, a, b, claimed)


def fold_onchain(op, a, b, claimed) -> bool:
    """The whole dissection on chain with the honest partials: every chunk accepted (asserted),
    then the fold's verdict."""
    judge = judge_contract()
    partials = J.reduction_partials(op, a, b, claimed)
    x, total, top = _totals(partials)
    for c, ca, cb in _chunks(op, a, b):
        assert judge.check_chunk(op, ca, cb, top, claimed, *partials[c].as_tuple()), c
    return bool(judge.check_fold(op, len(a), x, total, top, claimed))


def sigma(op, a, b, claimed) -> Fraction:
    """The fold's slack beyond the documented bound: (3n + 6) units of 2^G (truncation of the
    terms and of the claim, the +1 per truncated term in abs, the n units of the tolerance)."""
    partials = J.reduction_partials(op, a, b, claimed)
    scale = J.reduction_scale(max(p.top for p in partials), claimed)
    return (3 * len(a) + 6) * Fraction(2) ** scale


def _check_edges(op, a, b, honest: int) -> None:
    kind = KIND[op]
    args = _args(op, a, b)
    s, base, _ = linear_bound(kind, args, 0)
    claims = [(honest, True)]
    if J.is_finite(round_f32(s)):
        claims += near_bound_claims(s, lambda c: base + U * c, lambda c: sigma(op, a, b, c),
                                    lambda c: fold_reference(op, a, b, c))
    for c, expected in claims:
        assert fold_reference(op, a, b, c) is expected, (kind, c, expected)
        assert fold_onchain(op, a, b, c) is expected, (kind, c, expected)


def _sum_input(rng, n, profile):
    g, _ = make_pair(rng, n, profile)
    if profile == "cancel":
        g = [x if i % 2 else x ^ (1 << 31) for i, x in enumerate(g[: n // 2] * 2)] + g[2 * (n // 2):]
    return g


# ------------------------------------------------------------------------------- honest solvers pass, in any order


@FUZZ
@given(n=st.integers(65, 300), seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES))
def test_reduction_honest_matmul_passes_chunks_and_fold_in_any_order(n, seed, profile):
    rng = random.Random(seed)
    a, b = make_pair(rng, n, profile)
    honest = honest_dots(a, b, rng)
    for name, c in honest.items():
        assert J.is_finite(c) and fold_reference(J.OP_MATMUL, a, b, c), (name, profile)
    assert fold_onchain(J.OP_MATMUL, a, b, honest["torch_mm_t1"]), profile
    _check_edges(J.OP_MATMUL, a, b, honest["reverse"])


@FUZZ
@given(n=st.integers(65, 300), seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES))
def test_reduction_honest_sum_rows_passes_chunks_and_fold_in_any_order(n, seed, profile):
    rng = random.Random(seed)
    g = _sum_input(rng, n, profile)
    honest = honest_sums(g, rng)
    for name, c in honest.items():
        assert fold_reference(J.OP_SUM_ROWS, g, (), c), (name, profile)
    assert fold_onchain(J.OP_SUM_ROWS, g, (), honest["torch_t2"]), profile
    _check_edges(J.OP_SUM_ROWS, g, (), honest["pairwise"])


@pytest.mark.parametrize("n", [4096, 64 * 257])
def test_reduction_long_torch_orders_pass(n):
    """Whole-length float32 kernels (one BLAS call, 1 and 2 threads), float64 then rounded, and
    blocked orders, for the longest task reduction (4096) and one past a single post (257 chunks)."""
    torch.manual_seed(n)
    x, y = torch.randn(n), torch.randn(n) * 3
    a, b = [J.f32_bits(v) for v in x.tolist()], [J.f32_bits(v) for v in y.tolist()]
    claims = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        claims[f"mm_t{threads}"] = torch.mm(x.view(1, -1), y.view(-1, 1)).item()
        claims[f"sum_t{threads}"] = x.sum().item()
    torch.set_num_threads(1)
    claims["f64"] = float(torch.dot(x.double(), y.double()).float())
    claims["blocked64"] = float(sum((x[i:i + 64] @ y[i:i + 64] for i in range(0, n, 64)), torch.tensor(0.0)))
    claims["reversed"] = torch.dot(x.flip(0), y.flip(0)).item()
    for name, v in claims.items():
        op = J.OP_SUM_ROWS if name.startswith("sum") else J.OP_MATMUL
        assert fold_reference(op, a, b if op == J.OP_MATMUL else (), J.f32_bits(v)), name
    s = sum(value(p) * value(q) for p, q in zip(a, b))
    _, bound, _ = linear_bound("matmul", (a, b), 0)
    for direction in (1, -1):
        assert not fold_reference(J.OP_MATMUL, a, b, round_f32(s + direction * 2 * bound))


# ------------------------------------------------------------------------------- the chunk check is exact


@FUZZ
@given(n=st.integers(65, 200), seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES),
       op=st.sampled_from([J.OP_MATMUL, J.OP_SUM_ROWS]))
def test_reduction_chunk_check_accepts_only_the_exact_partial(n, seed, profile, op):
    """Any change of a committed partial (sum, absolute sum up or down, largest exponent, or a
    top misstated for the whole reduction) fails its chunk check, in both implementations."""
    rng = random.Random(seed)
    a, b = make_pair(rng, n, profile) if op == J.OP_MATMUL else (_sum_input(rng, n, profile), ())
    claimed = round_f32(linear_bound(KIND[op], _args(op, a, b), 0)[0]) if profile != "huge" else 0
    if not J.is_finite(claimed):
        claimed = 0
    partials = J.reduction_partials(op, a, b, claimed)
    top = max(p.top for p in partials)
    judge = judge_contract()
    c, ca, cb = next(_chunks(op, a, b))
    p = partials[c]
    assert J.check_chunk(op, ca, cb, top, claimed, p.as_tuple())
    assert judge.check_chunk(op, ca, cb, top, claimed, *p.as_tuple())
    for bad in ((p.x + 1, p.abs, p.top), (p.x, p.abs + 1, p.top), (p.x, p.abs - 1, p.top),
                (p.x, p.abs, p.top + 1), (p.x - 1, p.abs, p.top)):
        assert not J.check_chunk(op, ca, cb, top, claimed, bad), bad
        assert not judge.check_chunk(op, ca, cb, top, claimed, *bad), bad
    # a committed overall top below a term of the chunk: no partial at that scale is right
    low = J.LONG_TOP_FLOOR if p.top > J.LONG_TOP_FLOOR else None
    if low is not None and J.reduction_scale(low, claimed) + J.LONG_WINDOW < p.top:
        assert J.chunk_partial(op, ca, cb, J.reduction_scale(low, claimed)) is None
        assert not judge.check_chunk(op, ca, cb, low, claimed, *p.as_tuple())


def test_reduction_inflated_absolute_sum_fails_its_chunk_and_would_pass_the_fold():
    """Why the absolute sums are checked: inflating one widens the fold's tolerance enough to
    accept a wrong claim; the chunk check refuses the inflated partial."""
    rng = random.Random(3)
    a, b = make_pair(rng, 200, "unit")
    s, bound, _ = linear_bound("matmul", (a, b), 0)
    wrong = round_f32(s + 4 * bound)
    partials = J.reduction_partials(J.OP_MATMUL, a, b, wrong)
    x, total, top = _totals(partials)
    assert not J.check_fold(J.OP_MATMUL, 200, x, total, top, wrong)
    inflated = J.Partial(partials[0].x, partials[0].abs + 4 * total, partials[0].top)
    assert J.check_fold(J.OP_MATMUL, 200, x, total + 4 * total, top, wrong)
    judge = judge_contract()
    assert judge.check_fold(J.OP_MATMUL, 200, x, total + 4 * total, top, wrong)
    _, ca, cb = next(_chunks(J.OP_MATMUL, a, b))
    assert not judge.check_chunk(J.OP_MATMUL, ca, cb, top, wrong, *inflated.as_tuple())


def test_reduction_fold_rejects_non_finite_and_bad_arguments():
    judge = judge_contract()
    for claim in (0x7F800000, 0xFF800000, 0x7FC00000):
        assert not J.check_fold(J.OP_MATMUL, 100, 0, 0, 0, claim)
        assert not judge.check_fold(J.OP_MATMUL, 100, 0, 0, 0, claim)

    for op, n, reason in ((J.OP_MATMUL, 0, "judge: bad reduction length"),
                          (J.OP_SUM_ROWS, J.MAX_LONG_REDUCTION + 1, "judge: bad reduction length"),
                          (J.OP_ADD, 100, "judge: not a reduction")):
        with pytest.raises(J.JudgeError):
            J.fold_tolerance(op, n, 0, 0, 0, 0)
        with reverts(reason):
            judge.check_fold(op, n, 0, 0, 0, 0)
    with reverts("judge: length mismatch"):
        judge.check_chunk(J.OP_MATMUL, [0, 0], [0], 0, 0, 0, 0, J.LONG_TOP_FLOOR)
    with reverts("judge: empty reduction"):
        judge.check_chunk(J.OP_SUM_ROWS, [], [], 0, 0, 0, 0, J.LONG_TOP_FLOOR)
