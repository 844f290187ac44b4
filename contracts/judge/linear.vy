# pragma version 0.4.3
"""
@title linear
@notice The exact check of a signed sum of float32 terms against the any-order bound
        (docs/judge.md §2.2), shared by Judge (add, sub, mul) and ProgramJudge (the sums
        and contractions of training programs).
@dev    Terms are summed EXACTLY in int256 at the scale 2^S, S = max(top - 190, -200), top =
        the largest exponent among the non-zero terms and the claim; a term below 2^S is
        truncated and counted as one unit of slack.  The Python reference is
        offchain/dispute/judge.py `_linear`.
"""

from . import numeric

# a dot product of 64 products plus one plain term (addmm, conv2d with a bias)
MAX_TERMS: constant(uint256) = 65
U_INV: constant(uint256) = numeric.U_INV
WINDOW: constant(int256) = 190
SCALE_FLOOR: constant(int256) = -200
ETA_EXP: constant(int256) = numeric.ETA_EXP


@internal
@pure
def _linear(
    negs: DynArray[bool, MAX_TERMS],
    mants: DynArray[uint256, MAX_TERMS],
    exps: DynArray[int256, MAX_TERMS],
    claimed: uint32,
    gamma_n: uint256,
    eta_count: uint256,
) -> bool:
    """
    @notice Exact check of a signed sum of terms (neg, mantissa < 2^48, exponent).
    @dev    tol = ceil(gamma_n A / (2^24 - gamma_n)) + ceil(|C| / 2^24) + eta + slack,
            all in units of 2^S; accept iff |C - X| <= tol.
    @param negs Term signs.
    @param mants Term mantissas.
    @param exps Term exponents.
    @param claimed Claimed result (float32 bits).
    @param gamma_n Index n of gamma_n (0 for a single rounding).
    @param eta_count Number of 2^-126 underflow allowances.
    @return True iff within the bound.
    """
    return self._linear_scaled(negs, mants, exps, claimed, 1, 0, gamma_n, eta_count)


@internal
@pure
def _linear_scaled(
    negs: DynArray[bool, MAX_TERMS],
    mants: DynArray[uint256, MAX_TERMS],
    exps: DynArray[int256, MAX_TERMS],
    claimed: uint32,
    t_mant: uint256,
    t_exp: int256,
    gamma_n: uint256,
    eta_count: uint256,
) -> bool:
    """
    @notice The linear check of the claim times a positive factor t = t_mant * 2^t_exp
            against the terms: a claim c of s / t (a mean, a division by a count) is
            accepted iff |t c - s| <= gamma_n A + u|t c| + eta_count 2^-126.
    @param negs Term signs.
    @param mants Term mantissas.
    @param exps Term exponents.
    @param claimed Claimed result (float32 bits).
    @param t_mant Mantissa of the factor (< 2^32).
    @param t_exp Exponent of the factor.
    @param gamma_n Index n of gamma_n (0 for a single rounding).
    @param eta_count Number of 2^-126 underflow allowances.
    @return True iff within the bound.
    """
    if not numeric._is_finite(claimed):
        return False
    c_neg: bool = False
    c_mant: uint256 = 0
    c_exp: int256 = 0
    c_neg, c_mant, c_exp = numeric._decode(claimed)
    c_mant *= t_mant
    c_exp += t_exp
    n: uint256 = len(mants)

    top: int256 = SCALE_FLOOR + WINDOW
    for i: uint256 in range(n, bound=MAX_TERMS):
        if mants[i] != 0 and exps[i] > top:
            top = exps[i]
    if c_mant != 0 and c_exp > top:
        top = c_exp
    scale: int256 = top - WINDOW

    exact: int256 = 0
    abs_sum: uint256 = 0
    slack: uint256 = 0
    for i: uint256 in range(n, bound=MAX_TERMS):
        mag: uint256 = 0
        if exps[i] >= scale:
            mag = mants[i] << convert(exps[i] - scale, uint256)
        else:
            sh: uint256 = convert(scale - exps[i], uint256)
            if sh < 256:
                mag = mants[i] >> sh
            if mants[i] != 0:
                slack += 1
                abs_sum += 1
        abs_sum += mag
        if negs[i]:
            exact -= convert(mag, int256)
        else:
            exact += convert(mag, int256)

    c_mag: uint256 = 0
    c_slack: uint256 = 0
    if c_exp >= scale:
        c_mag = c_mant << convert(c_exp - scale, uint256)
    else:
        c_shift: uint256 = convert(scale - c_exp, uint256)
        if c_shift < 256:
            c_mag = c_mant >> c_shift
        if c_mant != 0:
            c_slack = 1
    claim: int256 = convert(c_mag, int256)
    if c_neg:
        claim = -claim

    eta: uint256 = 0
    if scale <= ETA_EXP:
        eta = eta_count << convert(ETA_EXP - scale, uint256)
    else:
        eta = numeric._ceil_div(eta_count, 1 << convert(scale - ETA_EXP, uint256))

    tol: uint256 = (
        numeric._ceil_div(gamma_n * abs_sum, U_INV - gamma_n)
        + numeric._ceil_div(c_mag + c_slack, U_INV)
        + eta
        + slack
        + c_slack
    )
    return convert(abs(claim - exact), uint256) <= tol
