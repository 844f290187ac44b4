# pragma version 0.4.3
# pragma optimize codesize
"""
@title ProgramIndex
@notice The index map of the program rules: which input elements decide ONE output element
        of ONE training-program node (docs/judge-programs.md §1), so the game knows which
        elements to open and ProgramJudge which values it was given.
@dev    The Python reference is offchain/dispute/program_rules.py `element_inputs`; a read is
        (input position, flat C-order indices), in the reference's order.  Two-stage ops
        (embedding, nll_loss, nll_loss_weight) return the first stage when `second` is false
        and the whole list given the first stage's values otherwise.  A read list longer than
        MAX_READ (a reduction the game must dissect first) reverts; `chunk_inputs` gives the
        reads of one chunk of MAX_READ terms of such a reduction (the dissectable ops).
"""

from judge import program

MAX_RANK: constant(uint256) = program.MAX_RANK
MAX_INPUTS: constant(uint256) = program.MAX_INPUTS
MAX_READ: constant(uint256) = program.MAX_READ
MAX_LISTS: constant(uint256) = program.MAX_LISTS


@external
@pure
def two_stage(op: uint256) -> bool:
    """
    @notice Whether the reads of `op` depend on input values (docs/judge-programs.md §1).
    @param op Program opcode.
    @return True for embedding, nll_loss and nll_loss_weight.
    """
    return op == program.OP_EMBEDDING or op == program.OP_NLL_LOSS or op == program.OP_NLL_LOSS_WEIGHT


@external
@pure
def element_inputs(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    index: uint256,
    first: DynArray[int256, MAX_READ],
    second: bool,
) -> DynArray[program.Read, MAX_LISTS]:
    """
    @notice The reads that decide flat output element `index` of `node`.
    @param node The node's opcode, dtype, shape and attrs.
    @param ins The input nodes' dtypes and shapes, in the node's input order.
    @param index Flat C-order output index.
    @param first Two-stage ops with `second`: the values of the first stage.
    @param second Whether to return the whole two-stage list.
    @return [(input position, flat indices)].
    """
    terms: uint256 = 0
    reads: DynArray[program.Read, MAX_LISTS] = []
    terms, reads = self._element_inputs(node, ins, index, first, second, 0, True)
    return reads


@external
@pure
def chunk_inputs(
    node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, t0: uint256
) -> (uint256, DynArray[program.Read, MAX_LISTS]):
    """
    @notice The reads of terms [t0, min(t0 + MAX_READ, n)) of the n-term reduction that decides
            flat output element `index` of a dissectable node (float32 sum, conv2d_grad_bias,
            layer_norm_grad_bias: the terms are the values of read 0; mm, bmm, addmm, conv2d,
            conv2d_grad_input, conv2d_grad_weight: the products of reads 0 and 1, then the bias
            term last, if any), in the order and positions of `element_inputs` without its cap.
    @param node The node's opcode, dtype, shape and attrs.
    @param ins The input nodes' dtypes and shapes, in the node's input order.
    @param index Flat C-order output index.
    @param t0 First term of the chunk, a multiple of MAX_READ below n.
    @return (n, [(input position, flat indices)]); the bias read only in the chunk holding term n - 1.
    """
    op: uint256 = node.op
    assert node.dtype == program.F32 and (
        op == program.OP_SUM or op == program.OP_LAYER_NORM_GRAD_BIAS or (op >= program.OP_MM and op <= program.OP_CONV2D_GRAD_BIAS)
    ), "rule: not a dissectable reduction"
    n: uint256 = 0
    reads: DynArray[program.Read, MAX_LISTS] = []
    n, reads = self._element_inputs(node, ins, index, [], False, t0, False)
    bias: bool = len(reads) > 2
    if bias:
        n += 1
    assert t0 % MAX_READ == 0 and t0 < n, "rule: no such chunk"
    if bias and n - t0 > MAX_READ:
        reads.pop()
    return n, reads


@internal
@pure
def _element_inputs(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    index: uint256,
    first: DynArray[int256, MAX_READ],
    second: bool,
    t0: uint256,
    cap: bool,
) -> (uint256, DynArray[program.Read, MAX_LISTS]):
    """
    @notice (terms, reads): the reductions' lists hold terms [t0, t0 + MAX_READ) only, of
            `terms` (the length of the product or summed lists); `cap` reverts where a list
            is longer than MAX_READ (then t0 = 0 and the lists are whole).
    """
    assert index < program._numel(node.shape), "rule: index out of range"
    op: uint256 = node.op
    if op == program.OP_VIEW:
        multi: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
        flat: uint256 = node.attrs[0]
        for d: uint256 in range(len(multi), bound=MAX_RANK):
            flat += multi[d] * node.attrs[d + 1]
        return 0, [program.Read(pos=0, idx=[flat])]
    if op == program.OP_CAT:
        return 0, self._cat(node, ins, index)
    if op == program.OP_BERNOULLI:
        return 0, [program.Read(pos=0, idx=[0])]
    if op >= program.OP_SUM and op <= program.OP_AMAX:
        count: uint256 = 0
        flats: DynArray[uint256, MAX_READ] = []
        count, flats = self._reduced(node, ins[0].shape, index, t0, cap)
        return count, [program.Read(pos=0, idx=flats)]
    if op >= program.OP_MM and op <= program.OP_ADDMM:
        return self._mm(node, ins, index, t0, cap)
    if op == program.OP_CONV2D:
        return self._conv(node, ins, index, t0, cap)
    if op == program.OP_CONV2D_GRAD_INPUT:
        return self._conv_grad_input(node, ins, index, t0, cap)
    if op == program.OP_CONV2D_GRAD_WEIGHT:
        return self._conv_grad_weight(node, ins, index, t0, cap)
    if op == program.OP_CONV2D_GRAD_BIAS:
        # terms (n, oh, ow) of go[:, index], C order
        go: DynArray[uint256, MAX_RANK] = ins[0].shape
        plane: uint256 = go[2] * go[3]
        count: uint256 = go[0] * plane
        column: DynArray[uint256, MAX_READ] = []
        for c: uint256 in range(self._chunk(t0, count, cap), bound=MAX_READ):
            t: uint256 = t0 + c
            column.append(self._ravel4(t // plane, index, t % plane // go[3], t % go[3], go))
        return count, [program.Read(pos=0, idx=column)]
    if op == program.OP_MAX_POOL2D or op == program.OP_MAX_POOL2D_INDICES:
        return 0, [program.Read(pos=0, idx=self._pool_window(node, ins[0].shape, index))]
    if op == program.OP_MAX_POOL2D_GRAD:
        flats: DynArray[uint256, MAX_READ] = self._pool_covering(node, ins[0].shape, index)
        return 0, [program.Read(pos=0, idx=flats), program.Read(pos=2, idx=flats)]
    if op >= program.OP_SOFTMAX and op <= program.OP_LOG_SOFTMAX_GRAD:
        base: uint256 = 0
        stride: uint256 = 0
        at: uint256 = 0
        base, stride, at = program._along(node.shape, index, node.attrs[0])
        size: uint256 = node.shape[node.attrs[0]]
        assert size <= MAX_READ, "rule: reduction too long"
        row: DynArray[uint256, MAX_READ] = []
        for k: uint256 in range(size, bound=MAX_READ):
            row.append(base + k * stride)
        if op == program.OP_SOFTMAX_GRAD:
            return 0, [program.Read(pos=0, idx=row), program.Read(pos=1, idx=row)]
        if op == program.OP_LOG_SOFTMAX_GRAD:
            return 0, [program.Read(pos=0, idx=row), program.Read(pos=1, idx=[index])]
        return 0, [program.Read(pos=0, idx=row)]
    if op >= program.OP_LAYER_NORM and op <= program.OP_GROUP_NORM_RSTD:
        return self._norm(node, ins, index, t0, cap)
    if op == program.OP_NLL_LOSS or op == program.OP_NLL_LOSS_WEIGHT:
        return 0, self._nll(node, ins, index, first, second)
    if op == program.OP_NLL_LOSS_GRAD:
        b: uint256 = index // ins[1].shape[len(ins[1].shape) - 1]
        go_at: uint256 = 0
        if node.attrs[0] == 0:
            go_at = b
        return 0, [program.Read(pos=0, idx=[go_at]), program.Read(pos=2, idx=[b]), program.Read(pos=3, idx=[0])]
    if op == program.OP_EMBEDDING:
        dim: uint256 = ins[0].shape[1]
        reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=1, idx=[index // dim])]
        if second:
            assert len(first) == 1, "rule: input values do not match the reads"
            assert first[0] >= 0 and first[0] < convert(ins[0].shape[0], int256), "rule: embedding index out of range"
            reads.append(program.Read(pos=0, idx=[convert(first[0], uint256) * dim + index % dim]))
        return 0, reads
    if op == program.OP_EMBEDDING_GRAD:
        assert node.attrs[2] == 0, "rule: embedding_grad with scale_grad_by_freq is not supported"
        dim: uint256 = node.shape[1]
        grads: DynArray[uint256, MAX_READ] = []
        ids: DynArray[uint256, MAX_READ] = []
        positions: uint256 = program._numel(ins[1].shape)
        assert positions <= MAX_READ, "rule: reduction too long"
        for p: uint256 in range(positions, bound=MAX_READ):
            grads.append(p * dim + index % dim)
            ids.append(p)
        return 0, [program.Read(pos=0, idx=grads), program.Read(pos=1, idx=ids)]
    if op == program.OP_ADD or op == program.OP_RELU or op == program.OP_THRESHOLD_BACKWARD or (
        op >= program.OP_NEG and op <= program.OP_LOGICAL_OR and op != program.OP_CAT and op != program.OP_CAST
    ):
        return 0, self._pointwise(node, ins, index)
    if op == program.OP_CAST:
        return 0, [program.Read(pos=0, idx=[index])]
    raise "rule: op has no program rule on chain"


@internal
@pure
def _chunk(t0: uint256, count: uint256, cap: bool) -> uint256:
    """
    @notice How many of `count` terms the chunk from term `t0` holds (at most MAX_READ);
            with `cap`, a reduction longer than MAX_READ reverts.
    """
    assert not cap or count <= MAX_READ, "rule: reduction too long"
    if t0 >= count:
        return 0
    return min(count - t0, MAX_READ)


@internal
@pure
def _span(start: uint256, count: uint256, step: uint256, t0: uint256, cap: bool) -> DynArray[uint256, MAX_READ]:
    """
    @notice start + k * step for the terms k of the chunk from `t0` of `count` terms.
    """
    out: DynArray[uint256, MAX_READ] = []
    for c: uint256 in range(self._chunk(t0, count, cap), bound=MAX_READ):
        out.append(start + (t0 + c) * step)
    return out


@internal
@pure
def _norm(
    node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, t0: uint256, cap: bool
) -> (uint256, DynArray[program.Read, MAX_LISTS]):
    """
    @notice layer_norm / group_norm (+ mean, rstd): the normalised row of x (layer: the
            trailing attrs[0] dims; group: the C/G * HW elements of (n, g)), then w[j], b[j];
            the layer_norm gradients: rows of go and x, mean[i], rstd[i] and all of w
            (input), columns of go and x with all of mean and rstd (weight), the go
            column (bias).  Returns (row or column length, reads), the lists cut to the chunk
            from `t0`.
    """
    op: uint256 = node.op
    shape: DynArray[uint256, MAX_RANK] = ins[0].shape
    if op >= program.OP_LAYER_NORM_GRAD_INPUT and op <= program.OP_LAYER_NORM_GRAD_BIAS:
        shape = ins[1].shape
    d: uint256 = 1
    affine: uint256 = index
    if op >= program.OP_GROUP_NORM:
        hw: uint256 = node.attrs[2]
        d = node.attrs[1] // node.attrs[3] * hw
        affine = index // hw % node.attrs[1]
    else:
        for k: uint256 in range(len(shape) - node.attrs[0], len(shape), bound=MAX_RANK):
            d *= shape[k]
        affine = index % d
    if op == program.OP_LAYER_NORM_GRAD_INPUT:
        row: uint256 = index // d
        span: DynArray[uint256, MAX_READ] = self._span(row * d, d, 1, t0, cap)
        reads: DynArray[program.Read, MAX_LISTS] = [
            program.Read(pos=0, idx=span), program.Read(pos=1, idx=span), program.Read(pos=2, idx=[row]), program.Read(pos=3, idx=[row])
        ]
        if node.attrs[2] != 0:
            reads.append(program.Read(pos=4, idx=self._span(0, d, 1, t0, cap)))
        return d, reads
    if op == program.OP_LAYER_NORM_GRAD_WEIGHT or op == program.OP_LAYER_NORM_GRAD_BIAS:
        rows: uint256 = program._numel(shape) // d
        column: DynArray[uint256, MAX_READ] = self._span(index, rows, d, t0, cap)
        if op == program.OP_LAYER_NORM_GRAD_BIAS:
            return rows, [program.Read(pos=0, idx=column)]
        every: DynArray[uint256, MAX_READ] = self._span(0, rows, 1, t0, cap)
        return rows, [program.Read(pos=0, idx=column), program.Read(pos=1, idx=column), program.Read(pos=2, idx=every), program.Read(pos=3, idx=every)]
    if op != program.OP_LAYER_NORM and op != program.OP_GROUP_NORM:
        return d, [program.Read(pos=0, idx=self._span(index * d, d, 1, t0, cap))]
    reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=0, idx=self._span(index // d * d, d, 1, t0, cap))]
    has_w: uint256 = node.attrs[len(node.attrs) - 2]
    if has_w != 0:
        reads.append(program.Read(pos=1, idx=[affine]))
    if node.attrs[len(node.attrs) - 1] != 0:
        reads.append(program.Read(pos=1 + has_w, idx=[affine]))
    return d, reads


@internal
@pure
def _ravel4(a: uint256, b: uint256, c: uint256, d: uint256, shape: DynArray[uint256, MAX_RANK]) -> uint256:
    return ((a * shape[1] + b) * shape[2] + c) * shape[3] + d


@internal
@pure
def _broadcast(multi: DynArray[uint256, MAX_RANK], shape: DynArray[uint256, MAX_RANK]) -> uint256:
    """
    @notice Flat index into `shape` of an output multi-index it broadcasts to (right-aligned).
    """
    skip: uint256 = len(multi) - len(shape)
    flat: uint256 = 0
    for d: uint256 in range(len(shape), bound=MAX_RANK):
        i: uint256 = 0
        if shape[d] != 1:
            i = multi[skip + d]
        flat = flat * shape[d] + i
    return flat


@internal
@pure
def _pointwise(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256) -> DynArray[program.Read, MAX_LISTS]:
    multi: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    reads: DynArray[program.Read, MAX_LISTS] = []
    for p: uint256 in range(len(ins), bound=MAX_INPUTS):
        reads.append(program.Read(pos=p, idx=[self._broadcast(multi, ins[p].shape)]))
    return reads


@internal
@pure
def _cat(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256) -> DynArray[program.Read, MAX_LISTS]:
    dim: uint256 = node.attrs[0]
    multi: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    for p: uint256 in range(len(ins), bound=MAX_INPUTS):
        if multi[dim] < ins[p].shape[dim]:
            return [program.Read(pos=p, idx=[program._ravel(multi, ins[p].shape)])]
        multi[dim] -= ins[p].shape[dim]
    raise "rule: cat index outside its inputs"


@internal
@pure
def _reduced(
    node: program.Node, source: DynArray[uint256, MAX_RANK], index: uint256, t0: uint256, cap: bool
) -> (uint256, DynArray[uint256, MAX_READ]):
    """
    @notice (count, the chunk from term `t0` of the input elements reduced into output `index`
            (attrs [keepdim, *dims]), C order).
    """
    out: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    rank: uint256 = len(source)
    reduced: bool[MAX_RANK] = empty(bool[MAX_RANK])
    for k: uint256 in range(1, len(node.attrs), bound=program.MAX_ATTRS):
        reduced[node.attrs[k]] = True
    multi: DynArray[uint256, MAX_RANK] = source
    count: uint256 = 1
    kept: uint256 = 0
    for d: uint256 in range(rank, bound=MAX_RANK):
        if reduced[d]:
            count *= source[d]
        elif node.attrs[0] != 0:
            multi[d] = out[d]
        else:
            multi[d] = out[kept]
            kept += 1
    flats: DynArray[uint256, MAX_READ] = []
    for c: uint256 in range(self._chunk(t0, count, cap), bound=MAX_READ):
        rest: uint256 = t0 + c
        for k: uint256 in range(rank, bound=MAX_RANK):
            d: uint256 = rank - 1 - k
            if reduced[d]:
                multi[d] = rest % source[d]
                rest //= source[d]
        flats.append(program._ravel(multi, source))
    return count, flats


@internal
@pure
def _mm(
    node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, t0: uint256, cap: bool
) -> (uint256, DynArray[program.Read, MAX_LISTS]):
    rank: uint256 = len(node.shape)
    cols: uint256 = node.shape[rank - 1]
    rows_cols: uint256 = node.shape[rank - 2] * cols
    batch: uint256 = index // rows_cols
    i: uint256 = index % rows_cols // cols
    j: uint256 = index % cols
    pa: uint256 = len(ins) - 2
    a: DynArray[uint256, MAX_RANK] = ins[pa].shape
    b: DynArray[uint256, MAX_RANK] = ins[pa + 1].shape
    m: uint256 = a[len(a) - 2]
    k: uint256 = a[len(a) - 1]
    # attrs [1]: B is stored transposed ([n, k]) and its row j is read
    flipped: bool = len(node.attrs) > 0 and node.attrs[0] != 0
    n: uint256 = b[len(b) - 1]
    step: uint256 = n
    at: uint256 = j
    if flipped:
        n = b[len(b) - 2]
        step = 1
        at = j * k
    row: DynArray[uint256, MAX_READ] = []
    column: DynArray[uint256, MAX_READ] = []
    for c: uint256 in range(self._chunk(t0, k, cap), bound=MAX_READ):
        t: uint256 = t0 + c
        row.append(batch * m * k + i * k + t)
        column.append(batch * k * n + at + t * step)
    reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=pa, idx=row), program.Read(pos=pa + 1, idx=column)]
    if node.op == program.OP_ADDMM:
        reads.append(program.Read(pos=0, idx=[self._broadcast([i, j], ins[0].shape)]))
    return k, reads


@internal
@pure
def _window(o: uint256, k: uint256, stride: uint256, pad: uint256, dil: uint256, size: uint256) -> (DynArray[uint256, MAX_READ], DynArray[uint256, MAX_READ]):
    """
    @notice (kernel offsets, input positions) of output position `o` inside the input.
    """
    taps: DynArray[uint256, MAX_READ] = []
    at: DynArray[uint256, MAX_READ] = []
    for t: uint256 in range(k, bound=MAX_READ):
        p: int256 = convert(o * stride + t * dil, int256) - convert(pad, int256)
        if p >= 0 and p < convert(size, int256):
            taps.append(t)
            at.append(convert(p, uint256))
    return taps, at


@internal
@pure
def _covering(h: uint256, k: uint256, stride: uint256, pad: uint256, dil: uint256, out: uint256) -> (DynArray[uint256, MAX_READ], DynArray[uint256, MAX_READ]):
    """
    @notice (kernel offsets, output positions) whose window reads input position `h`.
    """
    taps: DynArray[uint256, MAX_READ] = []
    at: DynArray[uint256, MAX_READ] = []
    for t: uint256 in range(k, bound=MAX_READ):
        num: int256 = convert(h + pad, int256) - convert(t * dil, int256)
        if num >= 0 and convert(num, uint256) % stride == 0 and convert(num, uint256) // stride < out:
            taps.append(t)
            at.append(convert(num, uint256) // stride)
    return taps, at


@internal
@pure
def _conv(
    node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, t0: uint256, cap: bool
) -> (uint256, DynArray[program.Read, MAX_LISTS]):
    a: DynArray[uint256, program.MAX_ATTRS] = node.attrs
    o: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    x: DynArray[uint256, MAX_RANK] = ins[0].shape
    w: DynArray[uint256, MAX_RANK] = ins[1].shape
    g: uint256 = o[1] // (w[0] // a[6])
    th: DynArray[uint256, MAX_READ] = []
    hs: DynArray[uint256, MAX_READ] = []
    tw: DynArray[uint256, MAX_READ] = []
    vs: DynArray[uint256, MAX_READ] = []
    th, hs = self._window(o[2], w[2], a[0], a[2], a[4], x[2])
    tw, vs = self._window(o[3], w[3], a[1], a[3], a[5], x[3])
    # terms (ci, p, q), C order
    count: uint256 = w[1] * len(hs) * len(vs)
    xs: DynArray[uint256, MAX_READ] = []
    ws: DynArray[uint256, MAX_READ] = []
    for c: uint256 in range(self._chunk(t0, count, cap), bound=MAX_READ):
        t: uint256 = t0 + c
        q: uint256 = t % len(vs)
        p: uint256 = t // len(vs) % len(hs)
        ci: uint256 = t // len(vs) // len(hs)
        xs.append(self._ravel4(o[0], g * w[1] + ci, hs[p], vs[q], x))
        ws.append(self._ravel4(o[1], ci, th[p], tw[q], w))
    reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=0, idx=xs), program.Read(pos=1, idx=ws)]
    if len(a) > 7 and a[7] != 0:
        reads.append(program.Read(pos=2, idx=[o[1]]))
    return count, reads


@internal
@pure
def _conv_grad_input(
    node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, t0: uint256, cap: bool
) -> (uint256, DynArray[program.Read, MAX_LISTS]):
    a: DynArray[uint256, program.MAX_ATTRS] = node.attrs
    o: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    go: DynArray[uint256, MAX_RANK] = ins[0].shape
    w: DynArray[uint256, MAX_RANK] = ins[2].shape
    cout_g: uint256 = w[0] // a[6]
    g: uint256 = o[1] // w[1]
    cl: uint256 = o[1] % w[1]
    th: DynArray[uint256, MAX_READ] = []
    ohs: DynArray[uint256, MAX_READ] = []
    tw: DynArray[uint256, MAX_READ] = []
    ows: DynArray[uint256, MAX_READ] = []
    th, ohs = self._covering(o[2], w[2], a[0], a[2], a[4], go[2])
    tw, ows = self._covering(o[3], w[3], a[1], a[3], a[5], go[3])
    # terms (co, p, q), C order
    count: uint256 = cout_g * len(ohs) * len(ows)
    gos: DynArray[uint256, MAX_READ] = []
    ws: DynArray[uint256, MAX_READ] = []
    for c: uint256 in range(self._chunk(t0, count, cap), bound=MAX_READ):
        t: uint256 = t0 + c
        q: uint256 = t % len(ows)
        p: uint256 = t // len(ows) % len(ohs)
        co: uint256 = g * cout_g + t // len(ows) // len(ohs)
        gos.append(self._ravel4(o[0], co, ohs[p], ows[q], go))
        ws.append(self._ravel4(co, cl, th[p], tw[q], w))
    return count, [program.Read(pos=0, idx=gos), program.Read(pos=2, idx=ws)]


@internal
@pure
def _valid(off: uint256, pad: uint256, stride: uint256, size: uint256, out: uint256) -> (uint256, uint256):
    """
    @notice (first, count) of the output positions o < `out` whose input position
            o * stride + off - pad lies in [0, size): a contiguous range.
    """
    if size + pad <= off:
        return 0, 0
    first: uint256 = 0
    if pad > off:
        first = (pad - off + stride - 1) // stride
    end: uint256 = min((size - 1 + pad - off) // stride + 1, out)
    if end <= first:
        return 0, 0
    return first, end - first


@internal
@pure
def _conv_grad_weight(
    node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, t0: uint256, cap: bool
) -> (uint256, DynArray[program.Read, MAX_LISTS]):
    a: DynArray[uint256, program.MAX_ATTRS] = node.attrs
    o: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    go: DynArray[uint256, MAX_RANK] = ins[0].shape
    x: DynArray[uint256, MAX_RANK] = ins[1].shape
    ci: uint256 = o[0] // (node.shape[0] // a[6]) * node.shape[1] + o[1]
    # terms (n, oh, ow) over the output rows and columns whose input tap is inside x, C order
    oh0: uint256 = 0
    rows: uint256 = 0
    ow0: uint256 = 0
    cols: uint256 = 0
    oh0, rows = self._valid(o[2] * a[4], a[2], a[0], x[2], go[2])
    ow0, cols = self._valid(o[3] * a[5], a[3], a[1], x[3], go[3])
    count: uint256 = go[0] * rows * cols
    gos: DynArray[uint256, MAX_READ] = []
    xs: DynArray[uint256, MAX_READ] = []
    for c: uint256 in range(self._chunk(t0, count, cap), bound=MAX_READ):
        t: uint256 = t0 + c
        ow: uint256 = ow0 + t % cols
        oh: uint256 = oh0 + t // cols % rows
        n: uint256 = t // cols // rows
        gos.append(self._ravel4(n, o[0], oh, ow, go))
        xs.append(self._ravel4(n, ci, oh * a[0] + o[2] * a[4] - a[2], ow * a[1] + o[3] * a[5] - a[3], x))
    return count, [program.Read(pos=0, idx=gos), program.Read(pos=1, idx=xs)]


@internal
@pure
def _pool_window(node: program.Node, x: DynArray[uint256, MAX_RANK], index: uint256) -> DynArray[uint256, MAX_READ]:
    a: DynArray[uint256, program.MAX_ATTRS] = node.attrs
    o: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    th: DynArray[uint256, MAX_READ] = []
    hs: DynArray[uint256, MAX_READ] = []
    tw: DynArray[uint256, MAX_READ] = []
    vs: DynArray[uint256, MAX_READ] = []
    th, hs = self._window(o[2], a[0], a[2], a[4], a[6], x[2])
    tw, vs = self._window(o[3], a[1], a[3], a[5], a[7], x[3])
    assert len(hs) * len(vs) <= MAX_READ, "rule: reduction too long"
    flats: DynArray[uint256, MAX_READ] = []
    for p: uint256 in range(len(hs), bound=MAX_READ):
        for q: uint256 in range(len(vs), bound=MAX_READ):
            flats.append(self._ravel4(o[0], o[1], hs[p], vs[q], x))
    return flats


@internal
@pure
def _pool_covering(node: program.Node, go: DynArray[uint256, MAX_RANK], index: uint256) -> DynArray[uint256, MAX_READ]:
    a: DynArray[uint256, program.MAX_ATTRS] = node.attrs
    o: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    th: DynArray[uint256, MAX_READ] = []
    ohs: DynArray[uint256, MAX_READ] = []
    tw: DynArray[uint256, MAX_READ] = []
    ows: DynArray[uint256, MAX_READ] = []
    th, ohs = self._covering(o[2], a[0], a[2], a[4], a[6], go[2])
    tw, ows = self._covering(o[3], a[1], a[3], a[5], a[7], go[3])
    assert len(ohs) * len(ows) <= MAX_READ, "rule: reduction too long"
    flats: DynArray[uint256, MAX_READ] = []
    for p: uint256 in range(len(ohs), bound=MAX_READ):
        for q: uint256 in range(len(ows), bound=MAX_READ):
            flats.append(self._ravel4(o[0], o[1], ohs[p], ows[q], go))
    return flats


@internal
@pure
def _nll(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    index: uint256,
    first: DynArray[int256, MAX_READ],
    second: bool,
) -> DynArray[program.Read, MAX_LISTS]:
    labels: DynArray[uint256, MAX_READ] = [index]
    if node.attrs[0] != 0 or node.op == program.OP_NLL_LOSS_WEIGHT:
        labels = []
        count: uint256 = program._numel(ins[1].shape)
        assert count <= MAX_READ, "rule: reduction too long"
        for b: uint256 in range(count, bound=MAX_READ):
            labels.append(b)
    reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=1, idx=labels)]
    if not second or node.op == program.OP_NLL_LOSS_WEIGHT:
        return reads
    assert len(first) == len(labels), "rule: input values do not match the reads"
    ignore: int256 = convert(node.attrs[1], int256) - program.SIGNED
    classes: uint256 = ins[0].shape[len(ins[0].shape) - 1]
    logp: DynArray[uint256, MAX_READ] = []
    for k: uint256 in range(len(labels), bound=MAX_READ):
        y: int256 = first[k]
        if y == ignore:
            continue
        assert y >= 0 and y < convert(classes, int256), "rule: label out of range"
        logp.append(labels[k] * classes + convert(y, uint256))
    reads.append(program.Read(pos=0, idx=logp))
    return reads
