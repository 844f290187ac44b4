# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title PointwiseJudge
@notice Stateless judge of the elementwise ops that need an enclosure of an irrational or
        inexact value: exp, log, sqrt, rsqrt, reciprocal, tanh, erf, sigmoid, gelu,
        gelu_backward and div. Judge.check forwards these opcodes here (staticcall).
@dev    docs/judge.md §3.8-3.10; the Python reference offchain/dispute/judge.py
        (`_enclose`, `check_pointwise`) performs exactly the same integer arithmetic.

        Every op encloses the exact value f(x) as [lo, hi] * 2^e (|lo|, |hi| <= 2^200,
        directed rounding) and a magnitude M(x) <= mag * 2^mag_e, then accepts the claim
        c iff |c - s| <= K u M + u|c| + eta_n 2^-126 for some s in the enclosure, all in
        exact integers at the scale 2^S, S = max(e + 200, mag_e + 200, E_c + 24, -126) - 224.
"""

from judge import numeric


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

# opcodes (offchain/dispute/judge.py POINTWISE)
OP_EXP: constant(uint256) = 18
OP_LOG: constant(uint256) = 19
OP_SQRT: constant(uint256) = 20
OP_RSQRT: constant(uint256) = 21
OP_RECIPROCAL: constant(uint256) = 22
OP_TANH: constant(uint256) = 23
OP_ERF: constant(uint256) = 24
OP_SIGMOID: constant(uint256) = 25
OP_GELU: constant(uint256) = 26
OP_GELU_BACKWARD: constant(uint256) = 27
OP_DIV: constant(uint256) = 30

ONE: constant(uint256) = numeric.ONE
HALF: constant(int256) = 9_223_372_036_854_775_808
ETA_EXP: constant(int256) = numeric.ETA_EXP

# 2^S <= 2^-224 * max(2^(e + 200), 2^(mag_e + 200), 2^24 |c|, 2^-126)
POINT_WINDOW: constant(int256) = 224
VALUE_BITS: constant(int256) = 200
# longest Kummer series (w = 2v <= 100 needs 171 terms)
SERIES_TERMS: constant(uint256) = 200
# exp(x) > 1.3 * FLT_MAX for x >= 89; exp(x) < 2^-150 for x <= -104
EXP_CEIL: constant(int256) = 89 * 18_446_744_073_709_551_616
EXP_FLOOR: constant(int256) = -104 * 18_446_744_073_709_551_616
# tanh(x) = x B / (1 + x B), B = (e^2x - 1) / 2x, for |x| < 1/4
TANH_SMALL: constant(uint256) = ONE // 4
# erfc(6.5) < 2^-64; 1 - Phi(10) < 2^-76 and 10 phi(10) < 2^-70
ERF_CUTOFF: constant(uint256) = 13 * ONE // 2
PHI_CUTOFF: constant(uint256) = 10 * ONE
# floor(2 / sqrt(pi) * 2^64), floor(1 / sqrt(2 pi) * 2^64), and one unit above
TWO_OVER_SQRTPI_LO: constant(uint256) = 20_814_921_713_516_466_458
TWO_OVER_SQRTPI_HI: constant(uint256) = 20_814_921_713_516_466_459
INV_SQRT2PI_LO: constant(uint256) = 7_359_186_146_747_302_452
INV_SQRT2PI_HI: constant(uint256) = 7_359_186_146_747_302_453
# tolerance K u M + u|c| + eta_n eta (docs/judge.md §3.9); K = 8 for exp, log, tanh, erf, gelu
K_SQRT: constant(uint256) = 2
K_RSQRT: constant(uint256) = 4
K_SIGMOID: constant(uint256) = 10
K_GELU_BACKWARD: constant(uint256) = 12
K_TRANSCENDENTAL: constant(uint256) = 8
# div: 1, or 5 when |y| >= 2^126 (biased exponent >= 253: a reciprocal 1/y may underflow)
K_DIV: constant(uint256) = 1
K_DIV_HUGE: constant(uint256) = 5
HUGE_BIASED: constant(uint256) = 253


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EXTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@pure
def check(op: uint256, x: uint32, y: uint32, claimed: uint32) -> bool:
    """
    @notice Verdict on one output element of an enclosure op.
    @dev    Unary ops ignore y (pass 0); div is x / y; gelu_backward is (g = x, x = y).
            log of x <= 0, sqrt of x < 0, rsqrt of x <= 0, reciprocal / div by zero and
            exp of x >= 89 reject every claim.
    @param op Graph opcode (18..27 or 30).
    @param x First input (float32 bits).
    @param y Second input (float32 bits) or 0.
    @param claimed The solver's float32 output element (bits).
    @return True iff within the bound of docs/judge.md §3.9.
    """
    ok: bool = False
    lo: int256 = 0
    hi: int256 = 0
    e: int256 = 0
    mag: uint256 = 0
    mag_e: int256 = 0
    ok, lo, hi, e, mag, mag_e = self._enclose(op, x, y)
    if not ok:
        return False
    k: uint256 = K_TRANSCENDENTAL
    eta_n: uint256 = 2
    if op == OP_LOG:
        eta_n = 0
    elif op == OP_SQRT:
        k = K_SQRT
        eta_n = 0
    elif op == OP_RSQRT:
        k = K_RSQRT
        eta_n = 0
    elif op == OP_RECIPROCAL:
        k = 0
    elif op == OP_SIGMOID:
        k = K_SIGMOID
    elif op == OP_GELU_BACKWARD:
        k = K_GELU_BACKWARD
    elif op == OP_DIV:
        k = K_DIV
        if (convert(y, uint256) >> 23) & 255 >= HUGE_BIASED:
            k = K_DIV_HUGE
    return self._accept(lo, hi, e, mag, mag_e, k, eta_n, claimed)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL: ACCEPTANCE                                          ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _shift_floor(m: int256, k: int256) -> int256:
    """
    @notice floor(m * 2^k) (arithmetic shift; |m * 2^k| < 2^255 for k > 0 by the callers).
    @param m Integer.
    @param k Exponent.
    @return The shifted value rounded down.
    """
    if k >= 0:
        return m << convert(k, uint256)
    return m >> convert(-k, uint256)


@internal
@pure
def _shift_ceil(m: int256, k: int256) -> int256:
    """
    @notice ceil(m * 2^k).
    @param m Integer.
    @param k Exponent.
    @return The shifted value rounded up.
    """
    return -self._shift_floor(-m, k)


@internal
@pure
def _accept(lo: int256, hi: int256, e: int256, mag: uint256, mag_e: int256, k: uint256, eta_n: uint256, claimed: uint32) -> bool:
    """
    @notice Whether |c - s| <= k u M + u|c| + eta_n 2^-126 for some s in [lo, hi] * 2^e.
    @param lo Lower end of the enclosure.
    @param hi Upper end of the enclosure.
    @param e Exponent of the enclosure.
    @param mag Upper bound of M in units of 2^mag_e.
    @param mag_e Exponent of mag.
    @param k Coefficient K (units of u).
    @param eta_n Number of 2^-126 allowances.
    @param claimed Claimed result (float32 bits).
    @return True iff accepted.
    """
    if not numeric._is_finite(claimed):
        return False
    c_neg: bool = False
    c_mant: uint256 = 0
    c_exp: int256 = 0
    c_neg, c_mant, c_exp = numeric._decode(claimed)
    scale: int256 = max(max(e, mag_e) + VALUE_BITS, max(c_exp + 24, ETA_EXP)) - POINT_WINDOW
    c: int256 = convert(c_mant, int256)
    if c_neg:
        c = -c
    tol: int256 = (
        self._shift_ceil(convert(k * mag, int256), mag_e - 24 - scale)
        + self._shift_ceil(convert(c_mant, int256), c_exp - 24 - scale)
        + self._shift_ceil(convert(eta_n, int256), ETA_EXP - scale)
    )
    return (
        self._shift_ceil(c, c_exp - scale) >= self._shift_floor(lo, e - scale) - tol
        and self._shift_floor(c, c_exp - scale) <= self._shift_ceil(hi, e - scale) + tol
    )


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL: ENCLOSURES                                          ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _signed(neg: bool, lo: int256, hi: int256) -> (int256, int256):
    """
    @notice [lo, hi], or [-hi, -lo] for a negative value.
    @param neg Whether to negate.
    @param lo Lower end of the magnitude.
    @param hi Upper end of the magnitude.
    @return The signed enclosure.
    """
    if neg:
        return -hi, -lo
    return lo, hi


@internal
@pure
def _abs_q64(bits: uint32) -> (uint256, uint256):
    """
    @notice Q64 enclosure of |x|.
    @param bits Float32 bits.
    @return (lo, hi).
    """
    lo: int256 = 0
    hi: int256 = 0
    lo, hi = numeric._to_q64(convert(convert(bits, uint256) & 2_147_483_647, uint32))
    return convert(lo, uint256), convert(hi, uint256)


@internal
@pure
def _sq(y: uint256, up: bool) -> uint256:
    """
    @notice Q64 square, rounded down or up.
    @param y Q64 value < 2^66.
    @param up Round up.
    @return y^2 in Q64.
    """
    if up:
        return numeric._ceil_div(y * y, ONE)
    return y * y // ONE


@internal
@pure
def _series(r: uint256, a: uint256, b: uint256, up: bool) -> uint256:
    """
    @notice Q64 bound of sum t_n, t_0 = 1, t_n = t_{n-1} r / (a n + b), r >= 0.
    @dev    Lower: floors, stop at a zero term. Upper: ceilings, stop once a term is <= 1
            unit and every later ratio is <= 1/2 (the tail is then <= 1 unit).
    @param r Q64 argument (<= 100 * 2^64).
    @param a Denominator slope.
    @param b Denominator offset.
    @param up Upper bound.
    @return The bound.
    """
    total: uint256 = ONE
    term: uint256 = ONE
    for n: uint256 in range(1, SERIES_TERMS + 1):
        d: uint256 = (a * n + b) * ONE
        if up:
            term = numeric._ceil_div(term * r, d)
        else:
            term = term * r // d
        total += term
        if up:
            if term <= 1 and 2 * r <= d + a * ONE:
                return total + 1
        elif term == 0:
            return total
    assert not up, "judge: series did not converge"
    return total


@internal
@pure
def _exp_rel(x_lo: int256, x_hi: int256) -> (uint256, uint256, int256):
    """
    @notice exp(x) in [m_lo, m_hi] * 2^(k - 64) for x in [x_lo, x_hi] * 2^-64, x < 89.
    @dev    x = k ln 2 + r, r in [0, ln 2), exp(r) = exp(r/2)^2; x <= -104 gives [0, 2^-150].
    @param x_lo Q64 lower end.
    @param x_hi Q64 upper end.
    @return (m_lo, m_hi, k), m in [2^64, 2^65].
    """
    if x_hi <= EXP_FLOOR:
        return 0, ONE, -150
    # k ln 2 is bounded below (down) and above (up) with the rounded ln 2 that fits k's sign
    down: int256 = convert(numeric.LN2_HI, int256)
    up: int256 = convert(numeric.LN2_LO, int256)
    if x_lo < 0:
        down = up
        up = convert(numeric.LN2_HI, int256)
    k: int256 = x_lo // down
    if k * down > x_lo:
        k -= 1
    r_lo: uint256 = convert(x_lo - k * down, uint256)
    r_hi: uint256 = convert(x_hi - k * up, uint256)
    return (
        self._sq(numeric._exp_pos_lo(r_lo >> 1), False),
        self._sq(numeric._exp_pos_hi(numeric._ceil_div(r_hi, 2)), True),
        k,
    )


@internal
@pure
def _kummer(v_lo: uint256, v_hi: uint256, plus: uint256) -> (uint256, uint256):
    """
    @notice Q64 enclosure of exp(-v) (S(2v) + plus), S(w) = sum w^n / (2n+1)!!, v in [v_lo, v_hi].
    @dev    erf(x) = 2/sqrt(pi) x exp(-x^2) S(2x^2); Phi(x) = 1/2 + phi(x) x S(x^2).
    @param v_lo Q64 lower end of v (<= 50).
    @param v_hi Q64 upper end of v.
    @param plus 0 or 1.
    @return (lo, hi).
    """
    m_lo: uint256 = 0
    m_hi: uint256 = 0
    k: int256 = 0
    m_lo, m_hi, k = self._exp_rel(-convert(v_hi, int256), -convert(v_lo, int256))
    s_lo: uint256 = self._series(2 * v_lo, 2, 1, False) + plus * ONE
    s_hi: uint256 = self._series(2 * v_hi, 2, 1, True) + plus * ONE
    sh: uint256 = convert(64 - k, uint256)
    return (m_lo * s_lo) >> sh, numeric._ceil_div(m_hi * s_hi, 1 << sh)


@internal
@pure
def _phi_terms(x: uint32, plus: uint256) -> (int256, int256):
    """
    @notice Q64 enclosure of 1/2 + x phi(x) (S(x^2) + plus): Phi(x) (plus = 0) or
            Phi(x) + x phi(x) (plus = 1).
    @param x Float32 bits.
    @param plus 0 or 1.
    @return (lo, hi).
    """
    neg: bool = convert(x, uint256) >> 31 == 1
    a_lo: uint256 = 0
    a_hi: uint256 = 0
    a_lo, a_hi = self._abs_q64(x)
    if a_lo >= PHI_CUTOFF:
        if neg:
            return -convert(plus, int256), 1
        return convert(ONE - 1, int256), convert(ONE + plus, int256)
    g_lo: uint256 = 0
    g_hi: uint256 = 0
    g_lo, g_hi = self._kummer(a_lo * a_lo // (2 * ONE), numeric._ceil_div(a_hi * a_hi, 2 * ONE), plus)
    t_lo: int256 = 0
    t_hi: int256 = 0
    t_lo, t_hi = self._signed(
        neg,
        convert(a_lo * g_lo * INV_SQRT2PI_LO // (ONE * ONE), int256),
        convert(numeric._ceil_div(a_hi * g_hi * INV_SQRT2PI_HI, ONE * ONE), int256),
    )
    return HALF + t_lo, HALF + t_hi


@internal
@pure
def _enclose(op: uint256, x: uint32, y: uint32) -> (bool, int256, int256, int256, uint256, int256):
    """
    @notice The exact value of the op and the magnitude M of its tolerance.
    @param op Opcode.
    @param x First input (float32 bits).
    @param y Second input (float32 bits).
    @return (ok, lo, hi, e, mag, mag_e); ok is False where no claim can pass.
    """
    neg: bool = False
    m: uint256 = 0
    e: int256 = 0
    neg, m, e = numeric._decode(x)
    lo: int256 = 0
    hi: int256 = 0
    d_lo: int256 = 0
    d_hi: int256 = 0
    if op == OP_DIV:
        y_neg: bool = False
        y_m: uint256 = 0
        y_e: int256 = 0
        y_neg, y_m, y_e = numeric._decode(y)
        if y_m == 0:
            return False, 0, 0, 0, 0, 0
        q_hi: uint256 = numeric._ceil_div(m << 176, y_m)
        lo, hi = self._signed(neg != y_neg, convert((m << 176) // y_m, int256), convert(q_hi, int256))
        return True, lo, hi, e - y_e - 176, q_hi, e - y_e - 176
    if op == OP_GELU_BACKWARD or op == OP_GELU:
        if op == OP_GELU:
            d_lo, d_hi = self._phi_terms(x, 0)
        else:
            d_lo, d_hi = self._phi_terms(y, 1)
        mi: int256 = convert(m, int256)
        lo, hi = self._signed(neg, mi * d_lo, mi * d_hi)
        return True, lo, hi, e - 64, m, e
    if op == OP_EXP:
        x_lo: int256 = 0
        x_hi: int256 = 0
        x_lo, x_hi = numeric._to_q64(x)
        if x_lo >= EXP_CEIL:
            return False, 0, 0, 0, 0, 0
        m_lo: uint256 = 0
        m_hi: uint256 = 0
        k: int256 = 0
        m_lo, m_hi, k = self._exp_rel(x_lo, x_hi)
        return True, convert(m_lo, int256), convert(m_hi, int256), k - 64, m_hi, k - 64
    if op == OP_LOG:
        if neg or m == 0:
            return False, 0, 0, 0, 0, 0
        width: uint256 = 24
        for _: uint256 in range(23):
            if m >= 1 << (width - 1):
                break
            width -= 1
        octave: int256 = e + convert(width, int256) - 1
        y_q: uint256 = m << (65 - width)
        lo = convert(numeric._log_lo(y_q), int256)
        hi = convert(numeric._log_hi(y_q), int256)
        ln2_lo: int256 = convert(numeric.LN2_LO, int256)
        ln2_hi: int256 = convert(numeric.LN2_HI, int256)
        if octave < 0:
            ln2_lo = ln2_hi
            ln2_hi = convert(numeric.LN2_LO, int256)
        lo += octave * ln2_lo
        hi += octave * ln2_hi
        return True, lo, hi, -64, convert(max(abs(lo), abs(hi)), uint256), -64
    if op == OP_SQRT or op == OP_RSQRT:
        if (neg and m != 0) or (op == OP_RSQRT and m == 0):
            return False, 0, 0, 0, 0, 0
        odd: uint256 = 0
        if e % 2 != 0:
            odd = 1
        if op == OP_SQRT:
            n: uint256 = m << (200 + odd)
            root: uint256 = isqrt(n)
            up: uint256 = root
            if root * root != n:
                up += 1
            half: int256 = (e - 200 - convert(odd, int256)) // 2
            return True, convert(root, int256), convert(up, int256), half, root + 1, half
        q: uint256 = m << odd
        r_hi: uint256 = isqrt(numeric._ceil_div(1 << 254, q)) + 1
        inv: int256 = -127 - (e - convert(odd, int256)) // 2
        return True, convert(isqrt((1 << 254) // q), int256), convert(r_hi, int256), inv, r_hi, inv
    if op == OP_RECIPROCAL:
        if m == 0:
            return False, 0, 0, 0, 0, 0
        p_hi: uint256 = numeric._ceil_div(1 << 200, m)
        lo, hi = self._signed(neg, convert((1 << 200) // m, int256), convert(p_hi, int256))
        return True, lo, hi, -200 - e, p_hi, -200 - e
    if m == 0:
        # tanh, erf, sigmoid at +-0
        if op == OP_SIGMOID:
            return True, HALF, HALF, -64, ONE // 2, -64
        return True, 0, 0, 0, 0, 0
    a_lo: uint256 = 0
    a_hi: uint256 = 0
    a_lo, a_hi = self._abs_q64(x)
    ul: uint256 = 0
    uh: uint256 = 0
    if op == OP_TANH:
        if a_hi < TANH_SMALL:
            b_lo: uint256 = self._series(2 * a_lo, 1, 1, False)
            b_hi: uint256 = self._series(2 * a_hi, 1, 1, True)
            ul = m * (b_lo * ONE // (ONE + numeric._ceil_div(a_hi * b_hi, ONE)))
            uh = m * numeric._ceil_div(b_hi * ONE, ONE + a_lo * b_lo // ONE)
            e -= 64
        else:
            q_lo: uint256 = numeric._exp_neg_lo(2 * a_hi)
            q_hi2: uint256 = numeric._exp_neg_hi(2 * a_lo)
            ul = (ONE - q_hi2) * ONE // (ONE + q_hi2)
            uh = numeric._ceil_div((ONE - q_lo) * ONE, ONE + q_lo)
            e = -64
        lo, hi = self._signed(neg, convert(ul, int256), convert(uh, int256))
        return True, lo, hi, e, uh, e
    if op == OP_ERF:
        if a_lo >= ERF_CUTOFF:
            ul = ONE - 1
            uh = ONE
            e = -64
        else:
            g_lo: uint256 = 0
            g_hi: uint256 = 0
            g_lo, g_hi = self._kummer(a_lo * a_lo // ONE, numeric._ceil_div(a_hi * a_hi, ONE), 0)
            ul = m * TWO_OVER_SQRTPI_LO * g_lo
            uh = m * TWO_OVER_SQRTPI_HI * g_hi
            e -= 128
        lo, hi = self._signed(neg, convert(ul, int256), convert(uh, int256))
        return True, lo, hi, e, uh, e
    # sigmoid
    if not neg:
        # 1 / (1 + exp(-x)) in [1/2, 1): M = s
        uh = numeric._ceil_div(ONE * ONE, ONE + numeric._exp_neg_lo(a_hi))
        return True, convert(ONE * ONE // (ONE + numeric._exp_neg_hi(a_lo)), int256), convert(uh, int256), -64, uh, -64
    # E / (1 + E), E = exp(x) = m_e 2^(k - 64); M = 1 - s = 1 / (1 + E)
    s_lo: int256 = 0
    s_hi: int256 = 0
    s_lo, s_hi = numeric._to_q64(x)
    e_lo: uint256 = 0
    e_hi: uint256 = 0
    kk: int256 = 0
    e_lo, e_hi, kk = self._exp_rel(s_lo, s_hi)
    sh: uint256 = convert(-kk, uint256)
    den_lo: uint256 = ONE + (e_lo >> sh)
    den_hi: uint256 = ONE + numeric._ceil_div(e_hi, 1 << sh)
    return (
        True,
        convert(e_lo * ONE // den_hi, int256),
        convert(numeric._ceil_div(e_hi * ONE, den_lo), int256),
        kk - 64,
        numeric._ceil_div(ONE * ONE, den_lo),
        -64,
    )
