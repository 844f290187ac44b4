"""ReLU / relu_grad (exact), malformed-input reverts, and the generic dispatcher."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from judge_testing import next_down, next_up, onchain, random_f32, reference

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
def test_judge_relu_matches_executor(z, g):
    if not (J.is_finite(z) and J.is_finite(g)):
        return
    relu = _torch_bits(torch.relu(_t(z)))
    grad = _torch_bits(torch.ops.aten.threshold_backward(_t(g), _t(z), 0.0))
    assert J.check_relu(z, relu)
    assert J.check_relu_grad(g, z, grad)
    # any other value is rejected (a zero result may carry either sign)
    for wrong in (next_up(relu), next_down(relu), relu ^ (1 << 31), g):
        expect_relu = wrong & 0x7FFFFFFF == 0 and relu & 0x7FFFFFFF == 0 or wrong == relu
        assert J.check_relu(z, wrong) == expect_relu
    for wrong in (next_up(grad), next_down(grad), grad ^ (1 << 31), z):
        same = wrong == grad or (wrong & 0x7FFFFFFF == 0 and grad & 0x7FFFFFFF == 0)
        assert J.check_relu_grad(g, z, wrong) == same
    # the bound has zero width: contract and reference accept the exact result and reject the
    # neighbouring float32 on either side
    for op, a, b, exact in ((J.OP_RELU, (z,), (), relu), (J.OP_RELU_GRAD, (g,), (z,), grad)):
        for claim, expected in ((exact, True), (next_up(exact), False), (next_down(exact), False)):
            call = J.JudgeCall(op, a, b, (), claim)
            assert reference(call) is expected and onchain(call) is expected, (op, claim)


def test_judge_relu_zero_convention():
    """relu(+-0) = 0 and relu_grad at z = +-0 is 0 (strict z > 0), either zero sign accepted."""
    one = J.f32_bits(1.0)
    for z in (0, NEG_ZERO):
        for claim in (0, NEG_ZERO):
            for call in (J.JudgeCall(J.OP_RELU, (z,), (), (), claim), J.JudgeCall(J.OP_RELU_GRAD, (one,), (z,), (), claim)):
                assert onchain(call) is True and reference(call) is True
        call = J.JudgeCall(J.OP_RELU_GRAD, (one,), (z,), (), one)
        assert onchain(call) is False and reference(call) is False
    tiny = 1  # smallest subnormal: z > 0 passes the gradient through
    call = J.JudgeCall(J.OP_RELU_GRAD, (one,), (tiny,), (), one)
    assert onchain(call) is True and reference(call) is True


ONE = J.f32_bits(1.0)
NAN = 0x7FC00000
INF = 0x7F800000
MALFORMED = [
    ("nan input", J.JudgeCall(J.OP_MATMUL, (ONE, NAN), (ONE, ONE), (), ONE)),
    ("inf input", J.JudgeCall(J.OP_ADD, (INF,), (ONE,), (), ONE)),
    ("inf relu", J.JudgeCall(J.OP_RELU, (INF,), (), (), ONE)),
    ("nan relu_grad z", J.JudgeCall(J.OP_RELU_GRAD, (ONE,), (NAN,), (), ONE)),
    ("inf lr", J.JudgeCall(J.OP_SGD, (ONE,), (ONE,), (INF,), ONE)),
    ("lr not 32 bits", J.JudgeCall(J.OP_SGD, (ONE,), (ONE,), (1 << 32,), ONE)),
    ("sum_rows too long", J.JudgeCall(J.OP_SUM_ROWS, (ONE,) * 65, (), (), ONE)),
    ("matmul too long", J.JudgeCall(J.OP_MATMUL, (ONE,) * 65, (ONE,) * 64, (), ONE)),
    ("matmul mismatch", J.JudgeCall(J.OP_MATMUL, (ONE,) * 3, (ONE,) * 2, (), ONE)),
    ("matmul empty", J.JudgeCall(J.OP_MATMUL, (), (), (), ONE)),
    ("sum_rows empty", J.JudgeCall(J.OP_SUM_ROWS, (), (), (), ONE)),
    ("add arity", J.JudgeCall(J.OP_ADD, (ONE, ONE), (ONE,), (), ONE)),
    ("relu arity", J.JudgeCall(J.OP_RELU, (), (), (), ONE)),
    ("sgd arity", J.JudgeCall(J.OP_SGD, (ONE,), (ONE,), (), ONE)),
    ("unknown op", J.JudgeCall(12, (ONE,), (ONE,), (), ONE)),
    ("param op", J.JudgeCall(0, (ONE,), (ONE,), (), ONE)),
]


@pytest.mark.parametrize("name,call", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_judge_malformed_reverts(name, call):
    assert reference(call) == "revert"
    assert onchain(call) == "revert"


def test_judge_revert_messages():
    import boa
    from judge_testing import judge_contract

    judge = judge_contract()
    with boa.reverts("judge: non-finite input"):
        judge.check_add(INF, ONE, ONE)
    with boa.reverts("judge: reduction too long"):
        judge.check(J.OP_SUM_ROWS, [ONE] * 65, [], [], ONE)
    with boa.reverts("judge: unknown op"):
        judge.check(99, [ONE], [ONE], [], ONE)
    with boa.reverts("judge: label out of range"):
        judge.check_softmax_xent([ONE, ONE], 5, ONE)
    with pytest.raises(J.JudgeError, match="judge: non-finite input"):
        J.check_add(INF, ONE, ONE)


def test_judge_per_op_externals_match_dispatcher():
    from judge_testing import judge_contract

    judge = judge_contract()
    rng = random.Random(9)
    a = [random_f32(rng, -3, 3) for _ in range(8)]
    b = [random_f32(rng, -3, 3) for _ in range(8)]
    c = J.f32_bits(float(np.dot(np.array(a, np.uint32).view(np.float32), np.array(b, np.uint32).view(np.float32))))
    assert judge.check_matmul(a, b, c) == judge.check(J.OP_MATMUL, a, b, [], c) == J.check_matmul(a, b, c) is True
    assert judge.check_sum_rows(a, c) == J.check_sum_rows(a, c)
    assert judge.check_add(a[0], b[0], c) == J.check_add(a[0], b[0], c)
    assert judge.check_sgd(a[0], b[0], J.f32_bits(0.1), a[0]) == J.check_sgd(a[0], b[0], J.f32_bits(0.1), a[0])
    assert judge.check_relu(a[1], a[1]) == J.check_relu(a[1], a[1])
    assert judge.check_relu_grad(a[1], b[1], a[1]) == J.check_relu_grad(a[1], b[1], a[1])
    assert judge.check_softmax_xent(a, 2, c) == J.check_softmax_xent(a, 2, c)
    assert judge.check_softmax_xent_grad(a, 2, 3, 4, c) == J.check_softmax_xent_grad(a, 2, 3, 4, c)


ANY_BITS = st.one_of(st.sampled_from(SPECIAL + [0x7F800000, 0x7FC00000, 0xFF800000]), st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(sorted(J.OP_NAMES)), a=st.lists(ANY_BITS, min_size=0, max_size=6),
       b=st.lists(ANY_BITS, min_size=0, max_size=6), aux=st.lists(st.integers(0, 8), max_size=3),
       claimed=ANY_BITS)
def test_judge_arbitrary_bits_contract_equals_reference(op, a, b, aux, claimed):
    """Raw bit patterns (NaN, Inf, FLT_MAX, subnormals, any arity): same verdict or both revert."""
    if op == J.OP_SGD and aux:
        aux = [b[0] if b else J.f32_bits(0.1)] + aux[1:]
    call = J.JudgeCall(op, tuple(a), tuple(b), tuple(aux), claimed)
    assert onchain(call) == reference(call)
