# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title ProgramJudge
@notice Stateless one-step judge of training programs (docs/judge-programs.md): given ONE
        output element of ONE program node, its descriptor fields, its input nodes' dtypes
        and shapes, the input elements the index map names (ProgramIndex) and the claimed
        value, returns the verdict of the program rules.
@dev    The Python reference is offchain/dispute/program_rules.py `check`; every verdict is
        the reference's (tests/judge/test_program_judge.py).  Values are int256: float32 bit
        patterns for f32, the signed value for i64, 0/1 for bool.  Malformed calls revert
        where the reference raises: a wrong count of values, a value outside its dtype, an
        index outside the node, an out-of-range token or label, a non-finite input (except
        the -inf of an attention mask in add / where and of masked softmax entries).

        On chain: the exact ops, the sums and contractions up to 64 terms (linear.vy, the
        any-order bound), means, max pooling and its gradient, nll_loss and its gradient,
        embeddings, softmax / safe_softmax / log_softmax rows up to 64 entries, and the
        elementwise ops with PyTorch's promotion (the enclosure ops go through Judge to
        PointwiseJudge).  The non-linear rules (the softmax gradients, normalisation, the
        pointwise calculus ops) are forwarded, with the same call data, to
        ProgramNonlinearJudge.
"""

from judge import linear
from judge import numeric
from judge import program
from judge import softmax
from interfaces import IJudge

MAX_RANK: constant(uint256) = program.MAX_RANK
MAX_INPUTS: constant(uint256) = program.MAX_INPUTS
MAX_READ: constant(uint256) = program.MAX_READ
MAX_LISTS: constant(uint256) = program.MAX_LISTS
MAX_TERMS: constant(uint256) = linear.MAX_TERMS

F32_BOUND: constant(int256) = 2**32
I64_BOUND: constant(int256) = 2**63
NEG_INF: constant(uint256) = 4_286_578_688
ONE_F32: constant(uint256) = 1_065_353_216
# Q64 (docs/judge.md §2.4); window edges are compared in units of 2^-88 = 2^-64 u
ONE: constant(uint256) = numeric.ONE
U_INV: constant(uint256) = numeric.U_INV
MAG_MASK: constant(uint256) = 2_147_483_647
SIGN_BIT: constant(uint256) = 2_147_483_648
MASK32: constant(uint256) = 4_294_967_295
FRAC_MASK: constant(uint256) = numeric.FRAC_MASK
HIDDEN_BIT: constant(uint256) = numeric.HIDDEN_BIT


interface IProgramIndex:
    def two_stage(op: uint256) -> bool: pure
    def element_inputs(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, first: DynArray[int256, MAX_READ], second: bool) -> DynArray[program.Read, MAX_LISTS]: pure


# the index map (contracts/ProgramIndex.vy), the one-step judge of the elementwise ops and
# the judge of the non-linear program rules (contracts/ProgramNonlinearJudge.vy)
index_map: public(immutable(address))
judge: public(immutable(address))
nonlinear: public(immutable(address))


@deploy
def __init__(index_map_: address, judge_: address, nonlinear_: address):
    """
    @param index_map_ The ProgramIndex giving the reads of an element.
    @param judge_ The Judge deciding add, relu and the elementwise codes 16..39.
    @param nonlinear_ The ProgramNonlinearJudge deciding normalisation, the softmax
           gradients and the pointwise calculus ops.
    """
    assert index_map_ != empty(address) and judge_ != empty(address) and nonlinear_ != empty(address), "judge: zero address"
    index_map = index_map_
    judge = judge_
    nonlinear = nonlinear_


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EXTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@view
def check(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    index: uint256,
    values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS],
    claimed: int256,
) -> bool:
    """
    @notice Verdict on flat output element `index` of `node`.
    @param node The node's opcode, dtype, shape and attrs.
    @param ins The input nodes' dtypes and shapes, in the node's input order.
    @param index Flat C-order output index.
    @param values values[k]: the values of the k-th read of ProgramIndex.element_inputs
           (both stages for two-stage ops), in order.
    @param claimed The solver's value of the element.
    @return True iff the claim is what the program rule accepts.
    """
    nothing: DynArray[int256, MAX_READ] = []
    reads: DynArray[program.Read, MAX_LISTS] = staticcall IProgramIndex(index_map).element_inputs(node, ins, index, nothing, False)
    if staticcall IProgramIndex(index_map).two_stage(node.op):
        assert len(values) >= len(reads), "rule: input values do not match the reads"
        self._match(reads, values, ins, len(reads))
        reads = staticcall IProgramIndex(index_map).element_inputs(node, ins, index, values[0], True)
    assert len(values) == len(reads), "rule: input values do not match the reads"
    self._match(reads, values, ins, len(reads))
    self._check_value(node.dtype, claimed)
    return self._verdict(node, ins, index, reads, values, claimed)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL: VALUES                                              ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _check_value(dtype: uint256, v: int256):
    if dtype == program.F32:
        assert v >= 0 and v < F32_BOUND, "rule: not a float32 bit pattern"
    elif dtype == program.BOOL:
        assert v == 0 or v == 1, "rule: not a bool"
    elif dtype == program.I64:
        assert v >= -I64_BOUND and v < I64_BOUND, "rule: not an int64"


@internal
@pure
def _match(
    reads: DynArray[program.Read, MAX_LISTS],
    values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS],
    ins: DynArray[program.Input, MAX_INPUTS],
    lists: uint256,
):
    """
    @notice The first `lists` value lists have the reads' lengths and their inputs' dtypes.
    """
    for k: uint256 in range(lists, bound=MAX_LISTS):
        assert len(values[k]) == len(reads[k].idx), "rule: input values do not match the reads"
        dtype: uint256 = ins[reads[k].pos].dtype
        for v: int256 in values[k]:
            self._check_value(dtype, v)


@internal
@pure
def _bits(v: int256) -> uint32:
    return convert(v, uint32)


@internal
@pure
def _key(v: int256) -> int256:
    """
    @notice Integer with the order of a finite float32 (+0 and -0 both 0); reverts on Inf/NaN.
    """
    numeric._decode(convert(v, uint32))
    mag: int256 = v & convert(MAG_MASK, int256)
    if v >= convert(SIGN_BIT, int256):
        return -mag
    return mag


@internal
@pure
def _is_zero(v: int256) -> bool:
    return convert(v, uint256) & MAG_MASK == 0


@internal
@pure
def _same(a: int256, b: int256) -> bool:
    """
    @notice Equal as real numbers (+0 == -0).
    """
    return a == b or (self._is_zero(a) and self._is_zero(b))


@internal
@pure
def _finite_or_neg_inf(v: int256):
    if convert(v, uint256) != NEG_INF:
        numeric._decode(convert(v, uint32))


@internal
@pure
def _round_f32(v: int256) -> int256:
    """
    @notice The integer v (|v| < 2^63) rounded to nearest-even binary32 (int64 -> float32).
    @param v Integer.
    @return Float32 bit pattern.
    """
    if v == 0:
        return 0
    sign: uint256 = 0
    if v < 0:
        sign = SIGN_BIT
    m: uint256 = convert(abs(v), uint256)
    sh: uint256 = 0
    for _: uint256 in range(40):
        if m >> (sh + 24) == 0:
            break
        sh += 1
    q: uint256 = m >> sh
    if sh > 0:
        half: uint256 = 1 << (sh - 1)
        r: uint256 = m & ((1 << sh) - 1)
        if r > half or (r == half and q & 1 == 1):
            q += 1
            if q == HIDDEN_BIT << 1:
                q >>= 1
                sh += 1
    e: int256 = convert(sh, int256)
    for _: uint256 in range(24):
        if q >= HIDDEN_BIT:
            break
        q <<= 1
        e -= 1
    return convert(sign | convert(e + 150, uint256) << 23 | (q & FRAC_MASK), int256)


@internal
@pure
def _hash32(x: uint256) -> uint256:
    """
    @notice Bob Jenkins' 32-bit integer hash (offchain/ml/ops.py hash32).
    """
    a: uint256 = (x + 2127912214 + (x << 12)) & MASK32
    a = (a ^ 3345072700 ^ (a >> 19)) & MASK32
    a = (a + 374761393 + (a << 5)) & MASK32
    a = ((a + 3550635116) ^ (a << 9)) & MASK32
    a = (a + 4251993797 + (a << 3)) & MASK32
    return (a ^ 3042594569 ^ (a >> 16)) & MASK32


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL: RULES                                               ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@view
def _verdict(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    index: uint256,
    reads: DynArray[program.Read, MAX_LISTS],
    values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS],
    claimed: int256,
) -> bool:
    op: uint256 = node.op
    nothing: DynArray[int256, MAX_READ] = []
    if op == program.OP_VIEW or op == program.OP_CAT or op == program.OP_EMBEDDING:
        return claimed == values[len(values) - 1][0]
    if op == program.OP_CAST:
        return self._cast(ins[0].dtype, node.dtype, values[0][0], claimed)
    if op == program.OP_BERNOULLI:
        # the key's low 32 bits: key + 2^63 has them
        key: uint256 = convert(values[0][0] + I64_BOUND, uint256)
        h: uint256 = self._hash32(self._hash32((key ^ node.attrs[0]) & MASK32) ^ (index & MASK32))
        if h < node.attrs[1]:
            return claimed == convert(ONE_F32, int256)
        return claimed == 0
    if op == program.OP_AMAX or op == program.OP_MAX_POOL2D or op == program.OP_MAX_POOL2D_INDICES:
        return self._max(node, ins, reads[0].idx, values[0], claimed)
    if op == program.OP_SUM and node.dtype == program.I64:  # a count: exact
        total: int256 = 0
        for v: int256 in values[0]:
            total += v
        return claimed == total
    if op == program.OP_SUM or op == program.OP_CONV2D_GRAD_BIAS or op == program.OP_LAYER_NORM_GRAD_BIAS:
        return self._sum(nothing, nothing, values[0], convert(claimed, uint32))
    if op == program.OP_MEAN:
        return self._mean(values[0], False, len(values[0]), convert(claimed, uint32))
    if op >= program.OP_MM and op <= program.OP_CONV2D_GRAD_WEIGHT:
        singles: DynArray[int256, MAX_READ] = []
        if len(values) > 2:
            singles = values[2]
        return self._sum(values[0], values[1], singles, convert(claimed, uint32))
    if op == program.OP_MAX_POOL2D_GRAD:
        o: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
        return self._selected(values[0], values[1], convert(o[2] * node.shape[3] + o[3], int256), claimed)
    if op == program.OP_EMBEDDING_GRAD:
        row: int256 = convert(index // node.shape[1], int256)
        if row == convert(node.attrs[1], int256) - program.SIGNED:
            return self._is_zero(claimed)
        return self._selected(values[0], values[1], row, claimed)
    if op >= program.OP_SOFTMAX and op <= program.OP_LOG_SOFTMAX:
        at: uint256 = 0
        _: uint256 = 0
        _, _, at = program._along(node.shape, index, node.attrs[0])
        return self._softmax(op, values[0], at, claimed)
    if op == program.OP_NLL_LOSS or op == program.OP_NLL_LOSS_WEIGHT:
        return self._nll(node, values, claimed)
    if op == program.OP_NLL_LOSS_GRAD:
        return self._nll_grad(node, ins, index, values, claimed)
    if op == program.OP_LOGICAL_NOT or op == program.OP_LOGICAL_AND or op == program.OP_LOGICAL_OR:
        a: bool = self._truth(ins[0].dtype, values[0][0])
        result: bool = not a
        if op == program.OP_LOGICAL_AND:
            result = a and self._truth(ins[1].dtype, values[1][0])
        elif op == program.OP_LOGICAL_OR:
            result = a or self._truth(ins[1].dtype, values[1][0])
        return claimed == convert(convert(result, uint256), int256)
    if op == program.OP_ADD or op == program.OP_RELU or op == program.OP_THRESHOLD_BACKWARD or (
        op >= program.OP_NEG and op <= program.OP_GE
    ):
        return self._elementwise(node, ins, values, claimed)
    # the same arguments: forward the call data
    return abi_decode(raw_call(nonlinear, msg.data, max_outsize=32, is_static_call=True), bool)


@internal
@pure
def _cast(src: uint256, dst: uint256, x: int256, claimed: int256) -> bool:
    """
    @notice f32 -> i64 truncates toward zero (|x| >= 2^63 reverts), f32 -> bool is x != 0,
            i64 / bool -> f32 rounds to nearest even, i64 -> bool is x != 0.
    """
    if src == dst:
        return claimed == x
    if src == program.F32:
        neg: bool = False
        mant: uint256 = 0
        exp: int256 = 0
        neg, mant, exp = numeric._decode(convert(x, uint32))
        if dst == program.BOOL:
            return claimed == convert(convert(mant != 0, uint256), int256)
        mag: uint256 = 0
        if exp >= 0:
            assert exp < 63 and mant << convert(exp, uint256) < 1 << 63, "rule: cast of a float32 outside the int64 range"
            mag = mant << convert(exp, uint256)
        elif exp > -64:
            mag = mant >> convert(-exp, uint256)
        if neg:
            return claimed == -convert(mag, int256)
        return claimed == convert(mag, int256)
    if dst == program.F32:
        return claimed == self._round_f32(x)
    if dst == program.BOOL:
        return claimed == convert(convert(x != 0, uint256), int256)
    return claimed == x


@internal
@pure
def _truth(dtype: uint256, v: int256) -> bool:
    if dtype == program.F32:
        return self._key(v) != 0
    return v != 0


@internal
@pure
def _max(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    flats: DynArray[uint256, MAX_READ],
    xs: DynArray[int256, MAX_READ],
    claimed: int256,
) -> bool:
    """
    @notice The first maximal element in read order (PyTorch keeps the earliest of ties):
            its value (either sign of zero), or for max_pool2d_indices its h * W + w.
    """
    best: uint256 = 0
    best_key: int256 = self._key(xs[0])
    for k: uint256 in range(1, len(xs), bound=MAX_READ):
        key: int256 = self._key(xs[k])
        if key > best_key:
            best = k
            best_key = key
    if node.op == program.OP_MAX_POOL2D_INDICES:
        return claimed == convert(flats[best] % (ins[0].shape[2] * ins[0].shape[3]), int256)
    return numeric._is_finite(convert(claimed, uint32)) and self._same(claimed, xs[best])


@internal
@pure
def _terms(
    a: DynArray[int256, MAX_READ],
    b: DynArray[int256, MAX_READ],
    singles: DynArray[int256, MAX_READ],
    negate: bool,
) -> (DynArray[bool, MAX_TERMS], DynArray[uint256, MAX_TERMS], DynArray[int256, MAX_TERMS]):
    """
    @notice The products a_k b_k, then the plain values (all negated if `negate`).
    """
    negs: DynArray[bool, MAX_TERMS] = []
    mants: DynArray[uint256, MAX_TERMS] = []
    exps: DynArray[int256, MAX_TERMS] = []
    assert len(a) == len(b), "rule: input values do not match the reads"
    for k: uint256 in range(len(a), bound=MAX_READ):
        an: bool = False
        am: uint256 = 0
        ae: int256 = 0
        bn: bool = False
        bm: uint256 = 0
        be: int256 = 0
        an, am, ae = numeric._decode(convert(a[k], uint32))
        bn, bm, be = numeric._decode(convert(b[k], uint32))
        negs.append((an != bn) != negate)
        mants.append(am * bm)
        exps.append(ae + be)
    for v: int256 in singles:
        vn: bool = False
        vm: uint256 = 0
        ve: int256 = 0
        vn, vm, ve = numeric._decode(convert(v, uint32))
        negs.append(vn != negate)
        mants.append(vm)
        exps.append(ve)
    return negs, mants, exps


@internal
@pure
def _sum(
    a: DynArray[int256, MAX_READ],
    b: DynArray[int256, MAX_READ],
    singles: DynArray[int256, MAX_READ],
    claimed: uint32,
) -> bool:
    """
    @notice Any-order sum of n terms: gamma_n and 4n eta with products, gamma_{n-1} and 2n
            eta for plain values (docs/judge-programs.md §4.1).
    """
    negs: DynArray[bool, MAX_TERMS] = []
    mants: DynArray[uint256, MAX_TERMS] = []
    exps: DynArray[int256, MAX_TERMS] = []
    negs, mants, exps = self._terms(a, b, singles, False)
    n: uint256 = len(mants)
    if len(a) > 0:
        return linear._linear(negs, mants, exps, claimed, n, 4 * n)
    if n == 0:
        return linear._linear(negs, mants, exps, claimed, 0, 0)
    return linear._linear(negs, mants, exps, claimed, n - 1, 2 * n)


@internal
@pure
def _mean(xs: DynArray[int256, MAX_READ], negate: bool, count: uint256, claimed: uint32) -> bool:
    """
    @notice (+-sum x) / count: |count c - s| <= gamma_n sum|x| + u|count c| + 4 count eta
            (docs/judge-programs.md §4.2); 0 / 0 has no finite value.
    """
    if count == 0:
        return False
    negs: DynArray[bool, MAX_TERMS] = []
    mants: DynArray[uint256, MAX_TERMS] = []
    exps: DynArray[int256, MAX_TERMS] = []
    nothing: DynArray[int256, MAX_READ] = []
    negs, mants, exps = self._terms(nothing, nothing, xs, negate)
    return linear._linear_scaled(negs, mants, exps, claimed, count, 0, len(xs), 4 * count)


@internal
@pure
def _selected(gs: DynArray[int256, MAX_READ], ids: DynArray[int256, MAX_READ], target: int256, claimed: int256) -> bool:
    """
    @notice Sum of the gradients whose index selects the element (a scatter-add).
    """
    picked: DynArray[int256, MAX_READ] = []
    for k: uint256 in range(len(gs), bound=MAX_READ):
        if ids[k] == target:
            picked.append(gs[k])
    nothing: DynArray[int256, MAX_READ] = []
    return self._sum(nothing, nothing, picked, convert(claimed, uint32))


@internal
@pure
def _nll(node: program.Node, values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS], claimed: int256) -> bool:
    """
    @notice nll_loss_weight: the label count as float32 (0 for reduction none); nll_loss:
            -logp exactly (none), their any-order sum (sum) or mean over the count (mean).
    """
    reduction: uint256 = node.attrs[0]
    ignore: int256 = convert(node.attrs[1], int256) - program.SIGNED
    count: uint256 = 0
    for y: int256 in values[0]:
        if y != ignore:
            count += 1
    if node.op == program.OP_NLL_LOSS_WEIGHT:
        if reduction == 0:
            return claimed == 0
        return claimed == self._round_f32(convert(count, int256))
    logp: DynArray[int256, MAX_READ] = values[1]
    if reduction == 0:
        if len(logp) == 0:
            return self._is_zero(claimed)
        numeric._decode(convert(logp[0], uint32))
        return numeric._is_finite(convert(claimed, uint32)) and self._same(claimed, logp[0] ^ convert(SIGN_BIT, int256))
    if reduction == 2:
        negs: DynArray[bool, MAX_TERMS] = []
        mants: DynArray[uint256, MAX_TERMS] = []
        exps: DynArray[int256, MAX_TERMS] = []
        nothing: DynArray[int256, MAX_READ] = []
        negs, mants, exps = self._terms(nothing, nothing, logp, True)
        n: uint256 = len(mants)
        if n == 0:
            return linear._linear(negs, mants, exps, convert(claimed, uint32), 0, 0)
        return linear._linear(negs, mants, exps, convert(claimed, uint32), n - 1, 2 * n)
    return self._mean(logp, True, count, convert(claimed, uint32))


@internal
@pure
def _nll_grad(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    index: uint256,
    values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS],
    claimed: int256,
) -> bool:
    """
    @notice -go / W at the label's column (W = total_weight for mean, else 1), 0 elsewhere
            and on ignored labels: |W c + go| <= gamma_2 |go| + u|W c| + 2 ceil(|W|) eta.
    """
    y: int256 = values[1][0]
    classes: uint256 = ins[1].shape[len(ins[1].shape) - 1]
    if y == convert(node.attrs[1], int256) - program.SIGNED or convert(index % classes, int256) != y:
        return self._is_zero(claimed)
    g_neg: bool = False
    g_mant: uint256 = 0
    g_exp: int256 = 0
    g_neg, g_mant, g_exp = numeric._decode(convert(values[0][0], uint32))
    if node.attrs[0] != 1:
        return linear._linear([not g_neg], [g_mant], [g_exp], convert(claimed, uint32), 2, 2)
    w_neg: bool = False
    w_mant: uint256 = 0
    w_exp: int256 = 0
    w_neg, w_mant, w_exp = numeric._decode(convert(values[2][0], uint32))
    if w_mant == 0:
        return False
    w_ceil: uint256 = 0
    if w_exp >= 0:
        w_ceil = w_mant << convert(w_exp, uint256)
    else:
        w_ceil = numeric._ceil_div(w_mant, 1 << convert(-w_exp, uint256))
    return linear._linear_scaled([g_neg == w_neg], [g_mant], [g_exp], convert(claimed, uint32), w_mant, w_exp, 2, 2 * w_ceil)


@internal
@view
def _elementwise(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS],
    claimed: int256,
) -> bool:
    """
    @notice One element through broadcasting (docs/judge-programs.md §1.1): i64 / bool
            operands of a node with a float32 operand are rounded to float32 (not where's
            condition); comparisons, maximum / minimum and where over i64 / bool are exact,
            other integer arithmetic reverts; -inf + x = -inf and
            where may select -inf; everything else is Judge's one-element rule.
    """
    op: uint256 = node.op
    v: DynArray[int256, MAX_INPUTS] = []
    floats: bool = False
    for k: uint256 in range(len(ins), bound=MAX_INPUTS):
        v.append(values[k][0])
        floats = floats or ins[k].dtype == program.F32
    if floats:
        for k: uint256 in range(len(ins), bound=MAX_INPUTS):
            if ins[k].dtype != program.F32 and not (op == program.OP_WHERE and k == 0):
                v[k] = self._round_f32(v[k])
    elif op >= program.OP_EQ:
        result: bool = v[0] >= v[1]
        if op == program.OP_EQ:
            result = v[0] == v[1]
        elif op == program.OP_NE:
            result = v[0] != v[1]
        elif op == program.OP_LT:
            result = v[0] < v[1]
        elif op == program.OP_LE:
            result = v[0] <= v[1]
        elif op == program.OP_GT:
            result = v[0] > v[1]
        return claimed == convert(convert(result, uint256), int256)
    elif op == program.OP_MAXIMUM:
        return claimed == max(v[0], v[1])
    elif op == program.OP_MINIMUM:
        return claimed == min(v[0], v[1])
    elif op != program.OP_WHERE:
        raise "rule: integer arithmetic has no rule"
    if op == program.OP_WHERE:
        chosen: int256 = v[2]
        if v[0] != 0:
            chosen = v[1]
        if node.dtype != program.F32:
            return claimed == chosen
        self._finite_or_neg_inf(v[1])
        self._finite_or_neg_inf(v[2])
        return claimed == chosen or (convert(chosen, uint256) != NEG_INF and self._same(claimed, chosen))
    if op == program.OP_ADD and (convert(v[0], uint256) == NEG_INF or convert(v[1], uint256) == NEG_INF):
        self._finite_or_neg_inf(v[0])
        self._finite_or_neg_inf(v[1])
        return convert(claimed, uint256) == NEG_INF
    if op == program.OP_THRESHOLD_BACKWARD:
        numeric._decode(convert(v[0], uint32))
        if not numeric._is_finite(convert(claimed, uint32)):
            return False
        if self._key(v[1]) > self._key(convert(node.attrs[0], int256)):
            return self._same(claimed, v[0])
        return self._is_zero(claimed)
    a: DynArray[uint32, 256] = [convert(v[0], uint32)]
    b: DynArray[uint32, 64] = []
    if len(v) > 1:
        b.append(convert(v[1], uint32))
    return staticcall IJudge(judge).check(op, a, b, [], convert(claimed, uint32))


@internal
@pure
def _softmax(op: uint256, row: DynArray[int256, MAX_READ], j: uint256, claimed: int256) -> bool:
    """
    @notice softmax / safe_softmax / log_softmax of row entry j (docs/judge-programs.md §4.3):
            Q64 enclosures of e_k = exp(z_k - m) over the live (not -inf) entries, m the first
            largest, and the window of softmax._window.  A masked entry is exactly 0
            (log_softmax: -inf); a row with no live entry is 0 for safe_softmax and has no
            value otherwise.
    """
    n: uint256 = len(row)
    m: uint256 = n
    m_key: int256 = 0
    for k: uint256 in range(n, bound=MAX_READ):
        if convert(row[k], uint256) != NEG_INF:
            key: int256 = self._key(row[k])
            if m == n or key > m_key:
                m = k
                m_key = key
    if m == n:
        return op == program.OP_SAFE_SOFTMAX and self._is_zero(claimed)
    if convert(row[j], uint256) == NEG_INF:
        if op == program.OP_LOG_SOFTMAX:
            return convert(claimed, uint256) == NEG_INF
        return self._is_zero(claimed)
    m_lo: int256 = 0
    m_hi: int256 = 0
    m_lo, m_hi = numeric._to_q64(convert(row[m], uint32))
    s_lo: uint256 = 0
    s_hi: uint256 = 0
    e_lo: uint256 = ONE
    e_hi: uint256 = ONE
    for k: uint256 in range(n, bound=MAX_READ):
        if convert(row[k], uint256) == NEG_INF:
            continue
        lo: uint256 = ONE
        hi: uint256 = ONE
        if k != m:
            lo, hi = softmax._exp_term(m_lo, m_hi, convert(row[k], uint32))
        s_lo += lo
        s_hi += hi
        if k == j:
            e_lo = lo
            e_hi = hi
    return softmax._window(op, n, convert(row[m], uint32), convert(row[j], uint32), j == m, e_lo, e_hi, s_lo, s_hi, claimed)
