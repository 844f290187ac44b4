"""The Q64 enclosures of exp(-x) and log(s) that the softmax-family rules of programs are built on
(`offchain/dispute/judge.py`, `contracts/judge/numeric.vy`): rigorous against 90-digit decimals,
and narrow."""

from __future__ import annotations

import random
from decimal import Decimal, localcontext

from offchain.dispute import judge as J


def test_judge_exp_log_enclosures_are_rigorous():
    with localcontext() as ctx:
        ctx.prec = 90
        _check_enclosures()


def _check_enclosures():
    rng = random.Random(3)
    xs = [0, 1, 2**20, 2**63, 2**64, 3 * 2**64 + 12345, 49 * 2**64, 50 * 2**64 - 1, 50 * 2**64, 2**80]
    xs += [rng.randrange(0, 52 * 2**64) for _ in range(200)]
    for x in xs:
        true = (-(Decimal(x) / Decimal(2) ** 64)).exp() * Decimal(2) ** 64
        assert J.exp_neg_lo(x) <= true <= J.exp_neg_hi(x), x
        if x < 40 * 2**64:
            assert J.exp_neg_hi(x) - J.exp_neg_lo(x) < 2**12
    ss = [2**64, 2**64 + 1, 2**65 - 1, 2**65, 3 * 2**64, 256 * 2**64, 2**72 + 2**60]
    ss += [rng.randrange(2**64, 257 * 2**64) for _ in range(200)]
    for s in ss:
        true = (Decimal(s) / Decimal(2) ** 64).ln() * Decimal(2) ** 64
        assert J.log_lo(s) <= true <= J.log_hi(s), s
        assert J.log_hi(s) - J.log_lo(s) < 2**8
    ln2 = Decimal(2).ln() * Decimal(2) ** 64
    assert J.LN2_LO <= ln2 <= J.LN2_HI
