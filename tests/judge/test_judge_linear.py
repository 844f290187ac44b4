"""Differential fuzzing of the linear one-step checks (matmul, sum_rows, add, sgd).

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
                                    lambda c: J.linear_tolerance(kind, args, c).accepted)
    for c, expected in claims:
        assert reference(call(c)) is expected, (kind, c, expected)
        assert onchain(call(c)) is expected, (kind, c, expected)


@FUZZ
@given(n=st.integers(1, 64), seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES))
def test_judge_matmul_fuzz(n, seed, profile):
    rng = random.Random(seed)
    a, b = make_pair(rng, n, profile)
    honest = honest_dots(a, b, rng)
    for name, c in honest.items():
        assert J.check_matmul(a, b, c), (name, profile)
    s, _, _ = linear_bound("matmul", (a, b), 0)
    beyond = _beyond_claims("matmul", (a, b), s)
    for c in beyond:
        assert not J.check_matmul(a, b, c), profile
    _assert_near_bound("matmul", (a, b), lambda c: J.JudgeCall(J.OP_MATMUL, tuple(a), tuple(b), (), c),
                       honest["forward"])


@FUZZ
@given(n=st.integers(1, 64), seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES))
def test_judge_sum_rows_fuzz(n, seed, profile):
    rng = random.Random(seed)
    g, partner = make_pair(rng, n, profile)
    if profile == "cancel":
        g = [x if i % 2 else x ^ (1 << 31) for i, x in enumerate(g[: n // 2] * 2)] + g[2 * (n // 2):]
    honest = honest_sums(g, rng)
    for name, c in honest.items():
        assert J.check_sum_rows(g, c), (name, profile)
    s, _, _ = linear_bound("sum_rows", (g,), 0)
    beyond = _beyond_claims("sum_rows", (g,), s)
    for c in beyond:
        assert not J.check_sum_rows(g, c)
    _assert_near_bound("sum_rows", (g,), lambda c: J.JudgeCall(J.OP_SUM_ROWS, tuple(g), (), (), c),
                       honest["forward"])


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
        assert J.check_add_bias(x, y, c)
    s = value(x) + value(y)
    beyond = _beyond_claims("add", ([x], [y]), s)
    for c in beyond:
        assert not J.check_add(x, y, c)
    op = (J.OP_ADD, J.OP_ADD_BIAS)[seed % 2]
    _assert_near_bound("add", ([x], [y]), lambda c: J.JudgeCall(op, (x,), (y,), (), c), _honest_add(x, y)[0])


def _honest_sgd(p: int, g: int, lr: int) -> list[int]:
    fp, fg, fl = (np.array([v], dtype=np.uint32).view(np.float32)[0] for v in (p, g, lr))
    import torch

    out = []
    with np.errstate(over="ignore", under="ignore"):
        out.append(int(np.array([np.float32(fp - np.float32(fl * fg))]).view(np.uint32)[0]))
        out.append(int(np.array([np.float32(np.float64(fp) - np.float64(fl) * np.float64(fg))]).view(np.uint32)[0]))
    out.append(round_f32(value(p) - value(lr) * value(g)))  # fused
    t = torch.add(torch.tensor([fp]), torch.tensor([fg]), alpha=-float(fl))
    out.append(int(t.numpy().view(np.uint32)[0]))
    return out


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(PROFILES))
def test_judge_sgd_fuzz(seed, profile):
    rng = random.Random(seed)
    inner = "unit" if profile in ("huge", "cancel") else profile
    p = _element(rng, inner)
    g = _element(rng, inner)
    lr = rng.choice([J.f32_bits(0.1), J.f32_bits(0.2), J.f32_bits(0.01), random_f32(rng, -12, 0) & 0x7FFFFFFF])
    if profile == "cancel":  # p close to lr * g
        p = round_f32(value(lr) * value(g))
    for c in _honest_sgd(p, g, lr):
        assert J.check_sgd(p, g, lr, c)
    s = value(p) - value(lr) * value(g)
    args = ([p], [g], [lr])
    beyond = _beyond_claims("sgd", args, s)
    for c in beyond:
        assert not J.check_sgd(p, g, lr, c)
    _assert_near_bound("sgd", args, lambda c: J.JudgeCall(J.OP_SGD, (p,), (g,), (lr,), c), _honest_sgd(p, g, lr)[0])


def test_judge_matmul_at_cap_extremes():
    """Largest and smallest magnitudes the numeric contract allows, at the reduction cap."""
    big = J.f32_bits(2.0 ** 62)
    col = [J.f32_bits(1.0)] * 64
    for a in ([big] * 64, [J.f32_bits(2.0 ** -149)] * 64):
        c = round_f32(sum((value(x) * value(y) for x, y in zip(a, col)), Fraction(0)))
        call = J.JudgeCall(J.OP_MATMUL, tuple(a), tuple(col), (), c)
        assert onchain(call) is True and reference(call) is True
    # largest finite inputs: products up to 2^256, exact in the window
    top = 0x7F7FFFFF
    call = J.JudgeCall(J.OP_MATMUL, (top, top ^ (1 << 31)), (top, top), (), 0)
    assert onchain(call) is True and reference(call) is True
    call = J.JudgeCall(J.OP_MATMUL, (top, top ^ (1 << 31)), (top, top), (), J.f32_bits(1e-30))
    assert onchain(call) is True  # within the 2*eta*... and gamma_2 * 2^257 slack
    call = J.JudgeCall(J.OP_MATMUL, (top,), (top,), (), top)
    assert onchain(call) is False and reference(call) is False  # 2^256 is not within u of FLT_MAX


@pytest.mark.parametrize("claim", [0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001])
def test_judge_linear_non_finite_claim_rejected(claim):
    one = J.f32_bits(1.0)
    for call in (
        J.JudgeCall(J.OP_MATMUL, (one,), (one,), (), claim),
        J.JudgeCall(J.OP_ADD, (one,), (one,), (), claim),
        J.JudgeCall(J.OP_SUM_ROWS, (one, one), (), (), claim),
        J.JudgeCall(J.OP_SGD, (one,), (one,), (one,), claim),
    ):
        assert onchain(call) is False
        assert reference(call) is False
