# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Judge
@notice Stateless one-step judge of the dispute game: the elementwise rules the
        ProgramJudge forwards (add, relu and the pointwise ops) and the chunk and fold
        checks of a reduction dissected in a dispute. Each re-computes ONE output element
        from its proven float32 inputs and accepts the solver's float32 claim iff it lies
        within a rigorous float32 error bound.
@dev    Numeric contract, bounds and their derivations: docs/judge.md.  The Python
        reference offchain/dispute/judge.py performs exactly the same integer arithmetic.

        Float32 values are passed as their IEEE-754 bit patterns (uint32).  An input with
        exponent field 255 (Inf/NaN) reverts ("judge: non-finite input": challenge the
        node that produced it instead); a non-finite claim is always rejected.

        Linear ops (add, sub, mul) are summed EXACTLY in int256 at the scale 2^S,
        S = max(top - 190, -200), top = the largest exponent among the non-zero terms and
        the claim; a term below 2^S is truncated and counted as one unit of slack.  Every
        comparison is an exact integer comparison with the tolerance rounded up.

        Pointwise ops (16..39): sub and mul use the linear check, neg, abs, maximum,
        minimum, where and the comparisons are exact here; the ops that need an
        enclosure of an inexact value are forwarded to PointwiseJudge (staticcall).
"""


from judge import linear
from judge import numeric
from interfaces import IPointwiseJudge


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

# terms one chunk check re-computes; operand lengths of `check`
MAX_REDUCTION: constant(uint256) = 64
MAX_CLASSES: constant(uint256) = 256
MAX_AUX: constant(uint256) = 4

# opcodes (offchain/ml/ops.py): add and relu; the reduction kinds of the chunk and fold checks
# (terms a_k * b_k, or plain a_k)
OP_MATMUL: constant(uint256) = 3
OP_ADD: constant(uint256) = 4
OP_RELU: constant(uint256) = 6
OP_SUM_ROWS: constant(uint256) = 10
# pointwise (offchain/dispute/judge.py POINTWISE): unary up to gelu (26), then binary;
# 18..27 and 30 (div) are forwarded to PointwiseJudge
OP_NEG: constant(uint256) = 16
OP_ABS: constant(uint256) = 17
OP_GELU: constant(uint256) = 26
OP_SUB: constant(uint256) = 28
OP_MUL: constant(uint256) = 29
OP_MAXIMUM: constant(uint256) = 31
OP_MINIMUM: constant(uint256) = 32
OP_WHERE: constant(uint256) = 33
OP_EQ: constant(uint256) = 34
OP_NE: constant(uint256) = 35
OP_LT: constant(uint256) = 36
OP_LE: constant(uint256) = 37
OP_GT: constant(uint256) = 38
OP_GE: constant(uint256) = 39

# float32 magnitude bits (sign cleared)
MAG_MASK: constant(uint256) = 2_147_483_647

# u = 2^-24, eta = 2^-126 per rounding
U_INV: constant(uint256) = numeric.U_INV
ETA_EXP: constant(int256) = numeric.ETA_EXP

# long reductions, dissected into chunks of MAX_REDUCTION terms (docs/judge.md §3.7): exact
LONG_WINDOW: constant(int256) = numeric.LONG_WINDOW
LONG_TOP_FLOOR: constant(int256) = numeric.LONG_TOP_FLOOR
MAX_LONG_REDUCTION: constant(uint256) = 4_194_304


# the judge of the enclosure ops (contracts/PointwiseJudge.vy)
pointwise: public(immutable(address))


@deploy
def __init__(pointwise_: address):
    """
    @param pointwise_ The PointwiseJudge that checks exp, log, sqrt, rsqrt, reciprocal,
           tanh, erf, sigmoid, gelu, gelu_backward and div.
    """
    assert pointwise_ != empty(address), "judge: zero address"
    pointwise = pointwise_


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EXTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@view
def check(
    op: uint256,
    a: DynArray[uint32, MAX_CLASSES],
    b: DynArray[uint32, MAX_REDUCTION],
    aux: DynArray[uint256, MAX_AUX],
    claimed: uint32,
) -> bool:
    """
    @notice Verdict on one output element of one node, dispatched on the opcode.
    @dev    add: a = [x], b = [y]; relu: a = [z]; pointwise: a = [x], b = [] (unary,
            16..26) or [y], where: aux = [cond]; comparisons claim 0 or 1.
    @param op Opcode (4, 6, 16..39).
    @param a First input (float32 bits).
    @param b Second input (float32 bits).
    @param aux Integer attributes (the condition of where).
    @param claimed The solver's float32 output element (bits).
    @return True iff the claim is within the bound of docs/judge.md.
    """
    if op == OP_ADD:
        assert len(a) == 1 and len(b) == 1, "judge: bad arity"
        return self._check_add(a[0], b[0], claimed)
    if op == OP_RELU:
        assert len(a) == 1, "judge: bad arity"
        return self._check_relu(a[0], claimed)
    if op >= OP_NEG and op <= OP_GE:
        return self._check_pointwise(op, a, b, aux, claimed)
    raise "judge: unknown op"


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL: FLOAT32                                             ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _is_zero(bits: uint32) -> bool:
    """
    @notice Whether a float32 bit pattern is +0 or -0.
    @param bits Float32 bits.
    @return True for either zero.
    """
    return convert(bits, uint256) & MAG_MASK == 0


@internal
@pure
def _order_key(bits: uint32) -> int256:
    """
    @notice Integer with the order of the finite float value (+0 and -0 map to 0).
    @param bits Float32 bits.
    @return The order key.
    """
    x: uint256 = convert(bits, uint256)
    mag: int256 = convert(x & MAG_MASK, int256)
    if x >> 31 == 1:
        return -mag
    return mag


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL: ADD                                                 ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _check_add(x: uint32, y: uint32, claimed: uint32) -> bool:
    """
    @notice Elementwise x + y: |c - (x + y)| <= u|c| + 2 * 2^-126.
    @param x First addend (float32 bits).
    @param y Second addend (float32 bits).
    @param claimed Claimed sum (float32 bits).
    @return True iff within the bound.
    """
    xn: bool = False
    xm: uint256 = 0
    xe: int256 = 0
    yn: bool = False
    ym: uint256 = 0
    ye: int256 = 0
    xn, xm, xe = numeric._decode(x)
    yn, ym, ye = numeric._decode(y)
    return linear._linear([xn, yn], [xm, ym], [xe, ye], claimed, 0, 2)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL: EXACT OPS                                           ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _check_relu(z: uint32, claimed: uint32) -> bool:
    """
    @notice max(z, 0), exact; a zero result may carry either sign.
    @param z Pre-activation (float32 bits).
    @param claimed Claimed output (float32 bits).
    @return True iff exact.
    """
    assert numeric._is_finite(z), "judge: non-finite input"
    if not numeric._is_finite(claimed):
        return False
    if convert(z, uint256) >> 31 == 1 or self._is_zero(z):
        return self._is_zero(claimed)
    return claimed == z


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL: POINTWISE OPS                                       ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@view
def _check_pointwise(
    op: uint256,
    a: DynArray[uint32, MAX_CLASSES],
    b: DynArray[uint32, MAX_REDUCTION],
    aux: DynArray[uint256, MAX_AUX],
    claimed: uint32,
) -> bool:
    """
    @notice Pointwise op check (docs/judge.md §3.8-3.10).
    @param op Opcode 16..39.
    @param a [x].
    @param b [] for unary ops, else [y].
    @param aux [cond] for where, else [].
    @param claimed Claimed element (float32 bits; 0 or 1 for comparisons).
    @return True iff within the bound.
    """
    n_b: uint256 = 1
    if op <= OP_GELU:
        n_b = 0
    n_aux: uint256 = 0
    if op == OP_WHERE:
        n_aux = 1
    assert len(a) == 1 and len(b) == n_b and len(aux) == n_aux, "judge: bad arity"
    x: uint32 = a[0]
    y: uint32 = 0
    if n_b == 1:
        y = b[0]
    xn: bool = False
    xm: uint256 = 0
    xe: int256 = 0
    yn: bool = False
    ym: uint256 = 0
    ye: int256 = 0
    xn, xm, xe = numeric._decode(x)
    yn, ym, ye = numeric._decode(y)
    if op == OP_SUB:
        return linear._linear([xn, not yn], [xm, ym], [xe, ye], claimed, 0, 2)
    if op == OP_MUL:
        return linear._linear([xn != yn], [xm * ym], [xe + ye], claimed, 0, 2)
    kx: int256 = self._order_key(x)
    ky: int256 = self._order_key(y)
    if op >= OP_EQ:
        result: bool = kx >= ky
        if op == OP_EQ:
            result = kx == ky
        elif op == OP_NE:
            result = kx != ky
        elif op == OP_LT:
            result = kx < ky
        elif op == OP_LE:
            result = kx <= ky
        elif op == OP_GT:
            result = kx > ky
        return convert(claimed, uint256) == convert(result, uint256)
    want: uint32 = y
    if op == OP_NEG:
        want = x ^ 2_147_483_648
    elif op == OP_ABS:
        want = x & 2_147_483_647
    elif op == OP_MAXIMUM:
        if kx >= ky:
            want = x
    elif op == OP_MINIMUM:
        if kx <= ky:
            want = x
    elif op == OP_WHERE:
        assert aux[0] <= 1, "judge: not a bool"
        if aux[0] == 1:
            want = x
    else:
        return staticcall IPointwiseJudge(pointwise).check(op, x, y, claimed)
    # exact, zero sign free
    return claimed == want or (self._is_zero(claimed) and self._is_zero(want))


# ╔═══════════════════════════════════════════════════════════════╗
# ║ LONG REDUCTIONS (CHUNK AND FOLD)                              ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@pure
def check_chunk(
    op: uint256,
    a: DynArray[uint32, MAX_REDUCTION],
    b: DynArray[uint32, MAX_REDUCTION],
    top: int256,
    claimed: uint32,
    x: int256,
    abs_sum: uint256,
    leaf_top: int256,
) -> bool:
    """
    @notice Chunk check of a dissected matmul / sum_rows: the committed partial (x, abs_sum,
            leaf_top) is exactly the chunk's partial at the reduction's scale 2^G.
    @dev    G = max(top, exponent of a finite non-zero claim, -40) - 160. x = sum of the terms
            truncated toward zero below 2^G, abs_sum = sum of their magnitudes plus one per
            truncated non-zero term, leaf_top = largest exponent of a non-zero term (>= -40).
    @param op OP_MATMUL (terms a_k * b_k) or OP_SUM_ROWS (terms a_k; b empty).
    @param a First operand of the chunk (float32 bits).
    @param b Second operand of the chunk (float32 bits).
    @param top The committed largest exponent over the whole reduction.
    @param claimed The solver's claimed output element (float32 bits).
    @param x Committed partial sum (units of 2^G).
    @param abs_sum Committed absolute sum (units of 2^G).
    @param leaf_top Committed largest exponent of the chunk.
    @return True iff the committed partial is the chunk's.
    """
    negs: DynArray[bool, MAX_REDUCTION] = []
    mants: DynArray[uint256, MAX_REDUCTION] = []
    exps: DynArray[int256, MAX_REDUCTION] = []
    negs, mants, exps = self._reduction_terms(op, a, b)
    scale: int256 = numeric._reduction_scale(top, claimed)
    chunk_top: int256 = LONG_TOP_FLOOR
    for i: uint256 in range(len(mants), bound=MAX_REDUCTION):
        if mants[i] != 0 and exps[i] > chunk_top:
            chunk_top = exps[i]
    if chunk_top > scale + LONG_WINDOW:
        # a term above the committed top: no partial at this scale is the chunk's
        return False
    exact: int256 = 0
    total: uint256 = 0
    for i: uint256 in range(len(mants), bound=MAX_REDUCTION):
        mag: uint256 = 0
        if exps[i] >= scale:
            mag = mants[i] << convert(exps[i] - scale, uint256)
        else:
            sh: uint256 = convert(scale - exps[i], uint256)
            if sh < 256:
                mag = mants[i] >> sh
            if mants[i] != 0:
                total += 1
        total += mag
        if negs[i]:
            exact -= convert(mag, int256)
        else:
            exact += convert(mag, int256)
    return exact == x and total == abs_sum and chunk_top == leaf_top


@external
@pure
def check_fold(op: uint256, n: uint256, x: int256, abs_sum: uint256, top: int256, claimed: uint32) -> bool:
    """
    @notice Fold check of a dissected matmul / sum_rows of n terms: the claim against the
            committed totals of its chunks, within the any-order bound of the FULL reduction.
    @dev    In units of 2^G: accept iff |C - x| <= ceil(g abs_sum / (2^24 - g)) + ceil((|C| +
            c_slack) / 2^24) + e * 2^-126 + n + c_slack, g = n (matmul) or n - 1 (sum_rows),
            e = 4n or 2n.
    @param op OP_MATMUL or OP_SUM_ROWS.
    @param n Terms of the reduction (<= 2^22).
    @param x Committed sum of the partials.
    @param abs_sum Committed sum of the absolute sums.
    @param top Committed largest exponent over the reduction.
    @param claimed The solver's claimed output element (float32 bits).
    @return True iff within the bound.
    """
    assert n != 0 and n <= MAX_LONG_REDUCTION, "judge: bad reduction length"
    gamma_n: uint256 = n
    eta_count: uint256 = 4 * n
    if op == OP_SUM_ROWS:
        gamma_n = n - 1
        eta_count = 2 * n
    else:
        assert op == OP_MATMUL, "judge: not a reduction"
    if not numeric._is_finite(claimed):
        return False
    scale: int256 = numeric._reduction_scale(top, claimed)
    c_neg: bool = False
    c_mant: uint256 = 0
    c_exp: int256 = 0
    c_neg, c_mant, c_exp = numeric._decode(claimed)
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
        + n
        + c_slack
    )
    return convert(abs(claim - x), uint256) <= tol




@internal
@pure
def _reduction_terms(
    op: uint256,
    a: DynArray[uint32, MAX_REDUCTION],
    b: DynArray[uint32, MAX_REDUCTION],
) -> (DynArray[bool, MAX_REDUCTION], DynArray[uint256, MAX_REDUCTION], DynArray[int256, MAX_REDUCTION]):
    """
    @notice Terms of one chunk: products a_k * b_k (matmul) or values a_k (sum_rows).
    @param op OP_MATMUL or OP_SUM_ROWS.
    @param a First operand (float32 bits).
    @param b Second operand (float32 bits; empty for sum_rows).
    @return (signs, mantissas, exponents).
    """
    n: uint256 = len(a)
    assert n != 0, "judge: empty reduction"
    if op == OP_MATMUL:
        assert n == len(b), "judge: length mismatch"
    else:
        assert op == OP_SUM_ROWS, "judge: not a reduction"
    negs: DynArray[bool, MAX_REDUCTION] = []
    mants: DynArray[uint256, MAX_REDUCTION] = []
    exps: DynArray[int256, MAX_REDUCTION] = []
    for k: uint256 in range(n, bound=MAX_REDUCTION):
        an: bool = False
        am: uint256 = 0
        ae: int256 = 0
        an, am, ae = numeric._decode(a[k])
        if op == OP_MATMUL:
            bn: bool = False
            bm: uint256 = 0
            be: int256 = 0
            bn, bm, be = numeric._decode(b[k])
            an = an != bn
            am = am * bm
            ae = ae + be
        negs.append(an)
        mants.append(am)
        exps.append(ae)
    return negs, mants, exps
