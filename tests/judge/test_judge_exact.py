"""ReLU (exact), malformed-input reverts, and the generic dispatcher of the Judge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from judge_testing import next_down, next_up, onchain, reference

from offchain.dispute import judge as J

NEG_ZERO = 1 << 31
SPECIAL = [0, NEG_ZERO, 1, NEG_ZERO | 1, J.f32_bits(1.0), J.f32_bits(-1.0), 0x7F7FFFFF, 0xFF7FFFFF, 0x00800000]


def _torch_bits(t: torch.Tensor) -> int:
    return int(t.numpy().view(np.uint32)[0])


def _t(bits: int) -> torch.Tensor:
    return torch.from_numpy(np.array([bits], dtype=np.uint32).view(np.float32).copy())


@settings(max_examples=150, deadline=None)
@given(z=st.one_of(st.sampled_from(SPECIAL), st.integers(0, 2**32 - 1)),
       g=st.one_of(st.sampled_from(SPECIAL), st.integers(0, 2**32 - 1)))
def test_judge_relu_matches_torch(z, g):
    if not (J.is_finite(z) and J.is_finite(g)):
        return
    relu = _torch_bits(torch.relu(_t(z)))
    assert J.check_relu(z, relu)
    # any other value is rejected (a zero result may carry either sign)
    for wrong in (next_up(relu), next_down(relu), relu ^ (1 << 31), g):
        expect_relu = wrong & 0x7FFFFFFF == 0 and relu & 0x7FFFFFFF == 0 or wrong == relu
        assert J.check_relu(z, wrong) == expect_relu
    # the bound has zero width: contract and reference accept the exact result and reject the
    # neighbouring float32 on either side
    for claim, expected in ((relu, True), (next_up(relu), False), (next_down(relu), False)):
        call = J.JudgeCall(J.OP_RELU, (z,), (), (), claim)
        assert reference(call) is expected and onchain(call) is expected, claim


def test_judge_relu_zero_convention():
    """relu(+-0) = 0, either zero sign accepted; the smallest subnormal passes through."""
    for z in (0, NEG_ZERO):
        for claim in (0, NEG_ZERO):
            call = J.JudgeCall(J.OP_RELU, (z,), (), (), claim)
            assert onchain(call) is True and reference(call) is True
    call = J.JudgeCall(J.OP_RELU, (1,), (), (), 1)
    assert onchain(call) is True and reference(call) is True


ONE = J.f32_bits(1.0)
NAN = 0x7FC00000
INF = 0x7F800000
MALFORMED = [
    ("nan input", J.JudgeCall(J.OP_ADD, (NAN,), (ONE,), (), ONE)),
    ("inf input", J.JudgeCall(J.OP_ADD, (INF,), (ONE,), (), ONE)),
    ("inf relu", J.JudgeCall(J.OP_RELU, (INF,), (), (), ONE)),
    ("add arity", J.JudgeCall(J.OP_ADD, (ONE, ONE), (ONE,), (), ONE)),
    ("relu arity", J.JudgeCall(J.OP_RELU, (), (), (), ONE)),
    ("a reduction is no element op", J.JudgeCall(J.OP_MATMUL, (ONE,), (ONE,), (), ONE)),
    ("unknown op", J.JudgeCall(12, (ONE,), (ONE,), (), ONE)),
    ("param op", J.JudgeCall(0, (ONE,), (ONE,), (), ONE)),
]


@pytest.mark.parametrize("name,call", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_judge_malformed_reverts(name, call):
    assert reference(call) == "revert"
    assert onchain(call) == "revert"


def test_judge_revert_messages():
    from judge_testing import judge_contract, reverts

    judge = judge_contract()
    with reverts("judge: non-finite input"):
        judge.check(J.OP_ADD, [INF], [ONE], [], ONE)
    with reverts("judge: bad arity"):
        judge.check(J.OP_RELU, [ONE, ONE], [], [], ONE)
    with reverts("judge: unknown op"):
        judge.check(99, [ONE], [ONE], [], ONE)
    with pytest.raises(J.JudgeError, match="judge: non-finite input"):
        J.check_add(INF, ONE, ONE)


ANY_BITS = st.one_of(st.sampled_from(SPECIAL + [0x7F800000, 0x7FC00000, 0xFF800000]), st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(sorted(J.OP_NAMES)), a=st.lists(ANY_BITS, min_size=0, max_size=6),
       b=st.lists(ANY_BITS, min_size=0, max_size=6), aux=st.lists(st.integers(0, 8), max_size=3),
       claimed=ANY_BITS)
def test_judge_arbitrary_bits_contract_equals_reference(op, a, b, aux, claimed):
    """Raw bit patterns (NaN, Inf, FLT_MAX, subnormals, any arity): same verdict or both revert."""
    call = J.JudgeCall(op, tuple(a), tuple(b), tuple(aux), claimed)
    assert onchain(call) == reference(call)
