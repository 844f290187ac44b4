"""Differential fuzzing of the linear one-step checks: a program's ``mm`` element (a dot product of
up to 64 products) and ``sum`` element (up to 64 terms), judged by the ProgramJudge, and the
elementwise ``add`` of the Judge.

Honest float32 results in any order / precision / FMA / flush-to-zero always pass; claims beyond
the documented bound (plus the judge's documented slack sigma) always fail; claims inside the
documented bound always pass. The contract and the Python reference agree at the edges of the
bound, on both sides of every example: the last float32 within the documented bound, the first
beyond it plus sigma, and the reference's own last accepted and first rejected float32.
"""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from judge_testing import (
    honest_dots,
    honest_sums,
    U,
    linear_bound,
    near_bound_claims,
    next_down,
    next_up,
    onchain,
    random_f32,
    reference,
    round_f32,
    sigma,
    value,
)

from offchain.dispute import judge as J
from offchain.dispute import program_rules as R
from program_runs import single
from test_program_judge import onchain as program_onchain
from test_program_judge import reference as program_reference

PROFILES = ("unit", "wide", "tiny", "huge", "mixed", "cancel", "zeros")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _element(rng: random.Random, profile: str) -> int:
    if profile == "unit":
        return random_f32(rng, -4, 4)
    if profile == "wide":
        return random_f32(rng, -40, 40)
    if profile == "tiny":
        return random_f32(rng, -149, -110)
    if profile == "huge":
        return random_f32(rng, 40, 58)
    if profile == "zeros":
        return rng.choice([0, 1 << 31, random_f32(rng, -2, 2)])
    return _element(rng, rng.choice(("unit", "wide", "tiny", "huge")))


def make_pair(rng: random.Random, n: int, profile: str) -> tuple[list[int], list[int]]:
    """Row and column of length n; 'cancel' makes products cancel (nearly) pairwise."""
    if profile != "cancel":
        inner = "mixed" if profile == "mixed" else profile
        if profile == "huge":  # keep every product finite: one factor huge, the other unit-sized
            return [_element(rng, "huge") for _ in range(n)], [_element(rng, "unit") for _ in range(n)]
        return [_element(rng, inner) for _ in range(n)], [_element(rng, inner) for _ in range(n)]
    half = n // 2
    a = [_element(rng, "wide") for _ in range(half)]
    b = [_element(rng, "wide") for _ in range(half)]
    a2 = list(a)
    b2 = [(x ^ (1 << 31)) if rng.random() < 0.5 else next_up(x ^ (1 << 31), rng.randint(1, 3)) for x in b]
    extra_a = [_element(rng, "unit") for _ in range(n - 2 * half)]
    extra_b = [_element(rng, "tiny") for _ in range(n - 2 * half)]
    return a + a2 + extra_a, b + b2 + extra_b


class ProgramElement:
    """Element 0 of a program ``mm`` node over a row ``a`` and a column ``b`` ("matmul"), or of a
    ``sum`` node over ``g`` ("sum_rows"): ``self(c)`` is the call with the claim ``c``, judged by
    the ProgramJudge (`onchain`) and the program rules (`reference`)."""

    def __init__(self, kind: str, args) -> None:
        def tensor(bits):
            return torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.float32).copy())

        if kind == "matmul":
            a, b = args
            tensors = [tensor(a).reshape(1, -1), tensor(b).reshape(-1, 1)]
            self.node, self.ins, _ = single("mm", "f32", tensors, ())
            values = [list(a), list(b)]
        else:
            (g,) = args
            self.node, self.ins, _ = single("sum", "f32", [tensor(g)], (0, 0))
            values = [list(g)]
        assert [len(idx) for _, idx in R.element_inputs(self.node, self.ins, 0)] == [len(v) for v in values]
        self.values = values

    def __call__(self, claimed: int) -> tuple:
        return (self.node, self.ins, 0, self.values, claimed)


def onchain_of(call) -> bool | str:
    return program_onchain(*call) if isinstance(call, tuple) else onchain(call)


def reference_of(call) -> bool | str:
    return program_reference(*call) if isinstance(call, tuple) else reference(call)


def _beyond_claims(kind: str, args, s: Fraction) -> list[int]:
    """Claims at s +- 2B (rounded away from s) and the first float32 beyond B + sigma."""
    out = []
    for direction in (1, -1):
        _, b_s, _ = linear_bound(kind, args, round_f32(s) if abs(s) < 2 ** 127 else 0)
        target = s + direction * 2 * b_s
        c = round_f32(target)
        step = next_up if direction > 0 else next_down
        for _ in range(64):
            _, b_c, _ = linear_bound(kind, args, c)
            if abs(value(c) - s) > b_c + sigma(kind, args, c):
                break
            c = step(c)
        out.append(c)
    return out


def _assert_near_bound(kind: str, args, call, honest: int) -> None:
    """Contract and reference at the edges of the bound, both sides: the last float within the
    documented bound B(c) is accepted, the first beyond B(c) + sigma rejected, and the two agree on
    the last accepted and first rejected float of the reference; and on one honest claim.
    ``call(c)``: the JudgeCall of claim c."""
    s, base, _ = linear_bound(kind, args, 0)
    claims = [(honest, True)]
    if J.is_finite(round_f32(s)):
        claims += near_bound_claims(s, lambda c: base + U * c, lambda c: sigma(kind, args, c),
                                    lambda c: reference_of(call(c)) is True)
    for c, expected in claims:
        assert reference_of(call(c)) is expected, (kind, c, expected)
        assert onchain_of(call(c)) is expected, (kind, c, expected)


@FUZZ
@given(n=st.integers(1, 64), seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES))
def test_judge_matmul_fuzz(n, seed, profile):
    rng = random.Random(seed)
    a, b = make_pair(rng, n, profile)
    honest = honest_dots(a, b, rng)
    element = ProgramElement("matmul", (a, b))
    for name, c in honest.items():
        assert program_reference(*element(c)), (name, profile)
    s, _, _ = linear_bound("matmul", (a, b), 0)
    beyond = _beyond_claims("matmul", (a, b), s)
    for c in beyond:
        assert not program_reference(*element(c)), profile
    _assert_near_bound("matmul", (a, b), element, honest["forward"])


@FUZZ
@given(n=st.integers(1, 64), seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES))
def test_judge_sum_rows_fuzz(n, seed, profile):
    rng = random.Random(seed)
    g, partner = make_pair(rng, n, profile)
    if profile == "cancel":
        g = [x if i % 2 else x ^ (1 << 31) for i, x in enumerate(g[: n // 2] * 2)] + g[2 * (n // 2):]
    honest = honest_sums(g, rng)
    element = ProgramElement("sum_rows", (g,))
    for name, c in honest.items():
        assert program_reference(*element(c)), (name, profile)
    s, _, _ = linear_bound("sum_rows", (g,), 0)
    beyond = _beyond_claims("sum_rows", (g,), s)
    for c in beyond:
        assert not program_reference(*element(c))
    _assert_near_bound("sum_rows", (g,), element, honest["forward"])


def _honest_add(x: int, y: int) -> list[int]:
    fx, fy = (np.array([v], dtype=np.uint32).view(np.float32)[0] for v in (x, y))
    with np.errstate(over="ignore", under="ignore"):
        total = np.float32(fx + fy)
    rn = round_f32(value(x) + value(y))
    ftz = 0 if abs(value(rn)) < Fraction(1, 1 << 126) else rn
    return [int(np.array([total]).view(np.uint32)[0]), rn, ftz]


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES))
def test_judge_add_fuzz(seed, profile):
    rng = random.Random(seed)
    x = _element(rng, "unit" if profile == "huge" else profile)
    y = rng.choice([_element(rng, "unit" if profile == "huge" else profile), x ^ (1 << 31), next_up(x ^ (1 << 31))])
    for c in _honest_add(x, y):
        assert J.check_add(x, y, c)
    s = value(x) + value(y)
    beyond = _beyond_claims("add", ([x], [y]), s)
    for c in beyond:
        assert not J.check_add(x, y, c)
    _assert_near_bound("add", ([x], [y]), lambda c: J.JudgeCall(J.OP_ADD, (x,), (y,), (), c), _honest_add(x, y)[0])


def test_judge_matmul_at_cap_extremes():
    """Largest and smallest magnitudes the numeric contract allows, at the reduction cap."""
    big = J.f32_bits(2.0 ** 62)
    col = [J.f32_bits(1.0)] * 64
    for a in ([big] * 64, [J.f32_bits(2.0 ** -149)] * 64):
        c = round_f32(sum((value(x) * value(y) for x, y in zip(a, col)), Fraction(0)))
        call = ProgramElement("matmul", (a, col))(c)
        assert onchain_of(call) is True and reference_of(call) is True
    # largest finite inputs: products up to 2^256, exact in the window
    top = 0x7F7FFFFF
    element = ProgramElement("matmul", ((top, top ^ (1 << 31)), (top, top)))
    assert onchain_of(element(0)) is True and reference_of(element(0)) is True
    assert onchain_of(element(J.f32_bits(1e-30))) is True  # within the 2*eta*... and gamma_2 * 2^257 slack
    call = ProgramElement("matmul", ((top,), (top,)))(top)
    assert onchain_of(call) is False and reference_of(call) is False  # 2^256 is not within u of FLT_MAX


@pytest.mark.parametrize("claim", [0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001])
def test_judge_linear_non_finite_claim_rejected(claim):
    one = J.f32_bits(1.0)
    for call in (
        ProgramElement("matmul", ((one,), (one,)))(claim),
        J.JudgeCall(J.OP_ADD, (one,), (one,), (), claim),
        ProgramElement("sum_rows", ((one, one),))(claim),
    ):
        assert onchain_of(call) is False
        assert reference_of(call) is False
