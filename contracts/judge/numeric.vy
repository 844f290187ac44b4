# pragma version 0.4.3
"""
@title numeric
@notice Pure float32 / Q64 helpers shared by Judge and PointwiseJudge (docs/judge.md §2):
        decoding of float32 bit patterns, directed-rounding division, and Q64 (2^-64)
        enclosures of exp and log.
"""

# float32 fields
EXP_MASK: constant(uint256) = 255
FRAC_MASK: constant(uint256) = 8_388_607
HIDDEN_BIT: constant(uint256) = 8_388_608
SUBNORMAL_EXP: constant(int256) = -149
EXP_BIAS_SHIFT: constant(int256) = 150

# u = 2^-24, eta = 2^-126 per rounding
U_INV: constant(uint256) = 16_777_216
ETA_EXP: constant(int256) = -126

# Q64 fixed point
ONE: constant(uint256) = 18_446_744_073_709_551_616
ONE_SQ: constant(uint256) = 340_282_366_920_938_463_463_374_607_431_768_211_456
EXP_CUTOFF: constant(uint256) = 50 * ONE
EXP_TERMS: constant(uint256) = 16
EXP_HALVINGS: constant(uint256) = 7
LOG_TERMS: constant(uint256) = 20
MAX_OCTAVE: constant(uint256) = 15
# partial sums of a dissected reduction at one scale 2^G, G = max(top, claim exponent,
# LONG_TOP_FLOOR) - LONG_WINDOW
LONG_WINDOW: constant(int256) = 160
LONG_TOP_FLOOR: constant(int256) = -40
# floor(ln 2 * 2^64) and one unit above it
LN2_LO: constant(uint256) = 12_786_308_645_202_655_659
LN2_HI: constant(uint256) = 12_786_308_645_202_655_660


@internal
@pure
def _is_finite(bits: uint32) -> bool:
    """
    @notice Whether a float32 bit pattern is finite.
    @param bits Float32 bits.
    @return False for Inf and NaN.
    """
    return (convert(bits, uint256) >> 23) & EXP_MASK != EXP_MASK


@internal
@pure
def _decode(bits: uint32) -> (bool, uint256, int256):
    """
    @notice Split a finite float32 into sign, integer mantissa and exponent.
    @param bits Float32 bits.
    @return (negative, mantissa, exponent), value = (-1)^negative * mantissa * 2^exponent.
    """
    x: uint256 = convert(bits, uint256)
    biased: uint256 = (x >> 23) & EXP_MASK
    assert biased != EXP_MASK, "judge: non-finite input"
    frac: uint256 = x & FRAC_MASK
    if biased == 0:
        return x >> 31 == 1, frac, SUBNORMAL_EXP
    return x >> 31 == 1, frac | HIDDEN_BIT, convert(biased, int256) - EXP_BIAS_SHIFT


@internal
@pure
def _ceil_div(a: uint256, b: uint256) -> uint256:
    """
    @notice ceil(a / b).
    @param a Numerator.
    @param b Positive denominator.
    @return The quotient rounded up.
    """
    # callers pass b > 0; q * b <= a cannot overflow
    q: uint256 = unsafe_div(a, b)
    if unsafe_mul(q, b) != a:
        q = unsafe_add(q, 1)
    return q


@internal
@pure
def _to_q64(bits: uint32) -> (int256, int256):
    """
    @notice Q64 enclosure [lo, hi] of a finite float32 value.
    @param bits Float32 bits.
    @return (lo, hi) with lo <= value * 2^64 <= hi (equal unless bits below 2^-64).
    """
    neg: bool = False
    mant: uint256 = 0
    exp: int256 = 0
    neg, mant, exp = self._decode(bits)
    q: uint256 = 0
    r: uint256 = 0
    if exp + 64 >= 0:
        q = mant << convert(exp + 64, uint256)
    else:
        sh: uint256 = convert(-(exp + 64), uint256)
        q = mant >> sh
        if q << sh != mant:
            r = 1
    if neg:
        return -convert(q + r, int256), -convert(q, int256)
    return convert(q, int256), convert(q + r, int256)


@internal
@pure
def _exp_pos_lo(r: uint256) -> uint256:
    """
    @notice Lower bound of exp(r / 2^64) * 2^64 for 0 <= r < 0.4 * 2^64 (Taylor, floors).
    @param r Q64 argument.
    @return Q64 lower bound.
    """
    total: uint256 = ONE
    term: uint256 = ONE
    # term <= e^0.4 * 2^64 < 2^65 and r < 2^63, so term * r < 2^128
    for k: uint256 in range(1, EXP_TERMS + 1):
        term = unsafe_div(unsafe_mul(term, r), unsafe_mul(k, ONE))
        if term == 0:
            break
        total = unsafe_add(total, term)
    return total


@internal
@pure
def _exp_pos_hi(r: uint256) -> uint256:
    """
    @notice Upper bound of exp(r / 2^64) * 2^64 for 0 <= r < 0.4 * 2^64 (Taylor, ceilings,
            plus one unit for the remainder r^17/17! * e^r < 2^-64).
    @param r Q64 argument.
    @return Q64 upper bound.
    """
    total: uint256 = ONE
    term: uint256 = ONE
    for k: uint256 in range(1, EXP_TERMS + 1):
        term = self._ceil_div(unsafe_mul(term, r), unsafe_mul(k, ONE))
        if term == 0:
            break
        total = unsafe_add(total, term)
    return unsafe_add(total, 1)


@internal
@pure
def _exp_neg_lo(x: uint256) -> uint256:
    """
    @notice Lower bound of exp(-x / 2^64) * 2^64 for x >= 0.
    @param x Q64 argument.
    @return Q64 lower bound.
    """
    if x >= EXP_CUTOFF:
        return 0
    y: uint256 = ONE_SQ // self._exp_pos_hi(self._ceil_div(x, 1 << EXP_HALVINGS))
    # y <= 2^64 throughout, so y * y <= 2^128
    for _: uint256 in range(EXP_HALVINGS):
        y = unsafe_div(unsafe_mul(y, y), ONE)
    return y


@internal
@pure
def _exp_neg_hi(x: uint256) -> uint256:
    """
    @notice Upper bound of exp(-x / 2^64) * 2^64 for x >= 0.
    @param x Q64 argument.
    @return Q64 upper bound.
    """
    if x >= EXP_CUTOFF:
        return 1
    y: uint256 = self._ceil_div(ONE_SQ, self._exp_pos_lo(x >> EXP_HALVINGS))
    for _: uint256 in range(EXP_HALVINGS):
        y = self._ceil_div(unsafe_mul(y, y), ONE)
    return y


@internal
@pure
def _octave(s: uint256) -> uint256:
    """
    @notice Largest k <= 15 with 2^(64 + k) <= s.
    @param s Q64 value >= 1.
    @return k.
    """
    k: uint256 = 0
    for _: uint256 in range(MAX_OCTAVE):
        if s < ONE << (k + 1):
            break
        k += 1
    return k


@internal
@pure
def _log_lo(s: uint256) -> uint256:
    """
    @notice Lower bound of ln(s / 2^64) * 2^64 for s >= 2^64 (atanh series, floors).
    @param s Q64 argument.
    @return Q64 lower bound.
    """
    k: uint256 = self._octave(s)
    y: uint256 = s >> k
    t: uint256 = (y - ONE) * ONE // (y + ONE)
    t2: uint256 = t * t // ONE
    power: uint256 = t
    acc: uint256 = 0
    for i: uint256 in range(LOG_TERMS):
        if power == 0:
            break
        # power <= t <= 2^64 / 3 and t2 < 2^61
        acc = unsafe_add(acc, unsafe_div(power, unsafe_add(unsafe_mul(2, i), 1)))
        power = unsafe_div(unsafe_mul(power, t2), ONE)
    return 2 * acc + k * LN2_LO


@internal
@pure
def _log_hi(s: uint256) -> uint256:
    """
    @notice Upper bound of ln(s / 2^64) * 2^64 for s >= 2^64 (atanh series, ceilings,
            plus two units for the tail of the series).
    @param s Q64 argument.
    @return Q64 upper bound.
    """
    k: uint256 = self._octave(s)
    y: uint256 = self._ceil_div(s, 1 << k)
    t: uint256 = self._ceil_div((y - ONE) * ONE, y + ONE)
    t2: uint256 = self._ceil_div(t * t, ONE)
    power: uint256 = t
    acc: uint256 = 0
    for i: uint256 in range(LOG_TERMS):
        if power == 0:
            break
        acc = unsafe_add(acc, self._ceil_div(power, unsafe_add(unsafe_mul(2, i), 1)))
        power = self._ceil_div(unsafe_mul(power, t2), ONE)
    return 2 * acc + 2 + k * LN2_HI


@internal
@pure
def _clog2(n: uint256) -> uint256:
    """
    @notice ceil(log2 n) for 1 <= n <= 256 (softmax rows).
    @param n Positive integer.
    @return Smallest k with 2^k >= n.
    """
    k: uint256 = 0
    for _: uint256 in range(9):
        if 1 << k >= n:
            break
        k += 1
    return k


@internal
@pure
def _reduction_scale(top: int256, claimed: uint32) -> int256:
    """
    @notice G = max(top, exponent of a finite non-zero claim, LONG_TOP_FLOOR) - LONG_WINDOW.
    @param top The committed largest term exponent.
    @param claimed The claimed element (float32 bits).
    @return The scale exponent G.
    """
    high: int256 = max(top, LONG_TOP_FLOOR)
    if self._is_finite(claimed):
        c_neg: bool = False
        c_mant: uint256 = 0
        c_exp: int256 = 0
        c_neg, c_mant, c_exp = self._decode(claimed)
        if c_mant != 0 and c_exp > high:
            high = c_exp
    return high - LONG_WINDOW
