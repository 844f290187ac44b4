"""The forced-error rate observed on chain matches `p` (PROTOCOL §6: Truebit got this wrong twice)."""

import math
import os

import pytest
from eth_utils import keccak

DRAWS = 10_000


@pytest.mark.parametrize("ppm", [10_000, 100_000, 500_000, 900_000])
def test_forced_error_rate__within_4_sigma_of_p(market, ppm):
    seed = os.urandom(8)
    hits = sum(
        market.is_forced_error(keccak(seed + b"s%d" % i), keccak(seed + b"e%d" % i), ppm)
        for i in range(DRAWS)
    )
    p = ppm / 1_000_000
    sigma = math.sqrt(DRAWS * p * (1 - p))
    assert abs(hits - DRAWS * p) <= 4 * sigma, f"{hits} forced errors in {DRAWS} draws at p={p}"


def test_forced_error_rate__extremes_are_exact(market):
    for i in range(200):
        secret, entropy = keccak(b"x%d" % i), keccak(b"y%d" % i)
        assert not market.is_forced_error(secret, entropy, 0)
        assert market.is_forced_error(secret, entropy, 1_000_000)
