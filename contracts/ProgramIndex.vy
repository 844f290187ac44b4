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
        MAX_READ (a reduction the game must dissect first) reverts.
"""

from judge import program

MAX_RANK: constant(uint256) = program.MAX_RANK
MAX_INPUTS: constant(uint256) = program.MAX_INPUTS
MAX_READ: constant(uint256) = program.MAX_READ
MAX_LISTS: constant(uint256) = program.MAX_LISTS
MAX_DIM: constant(uint256) = program.MAX_DIM


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
    return self._element_inputs(node, ins, index, first, second)


@internal
@pure
def _element_inputs(
    node: program.Node,
    ins: DynArray[program.Input, MAX_INPUTS],
    index: uint256,
    first: DynArray[int256, MAX_READ],
    second: bool,
) -> DynArray[program.Read, MAX_LISTS]:
    assert index < program._numel(node.shape), "rule: index out of range"
    op: uint256 = node.op
    if op == program.OP_VIEW:
        multi: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
        flat: uint256 = node.attrs[0]
        for d: uint256 in range(len(multi), bound=MAX_RANK):
            flat += multi[d] * node.attrs[d + 1]
        return [program.Read(pos=0, idx=[flat])]
    if op == program.OP_CAT:
        return self._cat(node, ins, index)
    if op == program.OP_BERNOULLI:
        return [program.Read(pos=0, idx=[0])]
    if op >= program.OP_SUM and op <= program.OP_AMAX:
        return [program.Read(pos=0, idx=self._reduced(node, ins[0].shape, index))]
    if op >= program.OP_MM and op <= program.OP_ADDMM:
        return self._mm(node, ins, index)
    if op == program.OP_CONV2D:
        return self._conv(node, ins, index)
    if op == program.OP_CONV2D_GRAD_INPUT:
        return self._conv_grad_input(node, ins, index)
    if op == program.OP_CONV2D_GRAD_WEIGHT:
        return self._conv_grad_weight(node, ins, index)
    if op == program.OP_CONV2D_GRAD_BIAS:
        go: DynArray[uint256, MAX_RANK] = ins[0].shape
        assert go[0] * go[2] * go[3] <= MAX_READ, "rule: reduction too long"
        column: DynArray[uint256, MAX_READ] = []
        for n: uint256 in range(go[0], bound=MAX_DIM):
            for oh: uint256 in range(go[2], bound=MAX_DIM):
                for ow: uint256 in range(go[3], bound=MAX_DIM):
                    column.append(self._ravel4(n, index, oh, ow, go))
        return [program.Read(pos=0, idx=column)]
    if op == program.OP_MAX_POOL2D or op == program.OP_MAX_POOL2D_INDICES:
        return [program.Read(pos=0, idx=self._pool_window(node, ins[0].shape, index))]
    if op == program.OP_MAX_POOL2D_GRAD:
        flats: DynArray[uint256, MAX_READ] = self._pool_covering(node, ins[0].shape, index)
        return [program.Read(pos=0, idx=flats), program.Read(pos=2, idx=flats)]
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
            return [program.Read(pos=0, idx=row), program.Read(pos=1, idx=row)]
        if op == program.OP_LOG_SOFTMAX_GRAD:
            return [program.Read(pos=0, idx=row), program.Read(pos=1, idx=[index])]
        return [program.Read(pos=0, idx=row)]
    if op >= program.OP_LAYER_NORM and op <= program.OP_GROUP_NORM_RSTD:
        return self._norm(node, ins, index)
    if op == program.OP_NLL_LOSS or op == program.OP_NLL_LOSS_WEIGHT:
        return self._nll(node, ins, index, first, second)
    if op == program.OP_NLL_LOSS_GRAD:
        b: uint256 = index // ins[1].shape[len(ins[1].shape) - 1]
        go_at: uint256 = 0
        if node.attrs[0] == 0:
            go_at = b
        return [program.Read(pos=0, idx=[go_at]), program.Read(pos=2, idx=[b]), program.Read(pos=3, idx=[0])]
    if op == program.OP_EMBEDDING:
        dim: uint256 = ins[0].shape[1]
        reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=1, idx=[index // dim])]
        if second:
            assert len(first) == 1, "rule: input values do not match the reads"
            assert first[0] >= 0 and first[0] < convert(ins[0].shape[0], int256), "rule: embedding index out of range"
            reads.append(program.Read(pos=0, idx=[convert(first[0], uint256) * dim + index % dim]))
        return reads
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
        return [program.Read(pos=0, idx=grads), program.Read(pos=1, idx=ids)]
    if op == program.OP_ADD or op == program.OP_RELU or op == program.OP_THRESHOLD_BACKWARD or (
        op >= program.OP_NEG and op <= program.OP_LOGICAL_OR and op != program.OP_CAT and op != program.OP_CAST
    ):
        return self._pointwise(node, ins, index)
    if op == program.OP_CAST:
        return [program.Read(pos=0, idx=[index])]
    raise "rule: op has no program rule on chain"


@internal
@pure
def _span(start: uint256, count: uint256, step: uint256) -> DynArray[uint256, MAX_READ]:
    assert count <= MAX_READ, "rule: reduction too long"
    out: DynArray[uint256, MAX_READ] = []
    for k: uint256 in range(count, bound=MAX_READ):
        out.append(start + k * step)
    return out


@internal
@pure
def _norm(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256) -> DynArray[program.Read, MAX_LISTS]:
    """
    @notice layer_norm / group_norm (+ mean, rstd): the normalised row of x (layer: the
            trailing attrs[0] dims; group: the C/G * HW elements of (n, g)), then w[j], b[j];
            the layer_norm gradients: rows of go and x, mean[i], rstd[i] and all of w
            (input), columns of go and x with all of mean and rstd (weight), the go
            column (bias).
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
        span: DynArray[uint256, MAX_READ] = self._span(row * d, d, 1)
        reads: DynArray[program.Read, MAX_LISTS] = [
            program.Read(pos=0, idx=span), program.Read(pos=1, idx=span), program.Read(pos=2, idx=[row]), program.Read(pos=3, idx=[row])
        ]
        if node.attrs[2] != 0:
            reads.append(program.Read(pos=4, idx=self._span(0, d, 1)))
        return reads
    if op == program.OP_LAYER_NORM_GRAD_WEIGHT or op == program.OP_LAYER_NORM_GRAD_BIAS:
        rows: uint256 = program._numel(shape) // d
        column: DynArray[uint256, MAX_READ] = self._span(index, rows, d)
        if op == program.OP_LAYER_NORM_GRAD_BIAS:
            return [program.Read(pos=0, idx=column)]
        every: DynArray[uint256, MAX_READ] = self._span(0, rows, 1)
        return [program.Read(pos=0, idx=column), program.Read(pos=1, idx=column), program.Read(pos=2, idx=every), program.Read(pos=3, idx=every)]
    if op != program.OP_LAYER_NORM and op != program.OP_GROUP_NORM:
        return [program.Read(pos=0, idx=self._span(index * d, d, 1))]
    reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=0, idx=self._span(index // d * d, d, 1))]
    has_w: uint256 = node.attrs[len(node.attrs) - 2]
    if has_w != 0:
        reads.append(program.Read(pos=1, idx=[affine]))
    if node.attrs[len(node.attrs) - 1] != 0:
        reads.append(program.Read(pos=1 + has_w, idx=[affine]))
    return reads


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
def _reduced(node: program.Node, source: DynArray[uint256, MAX_RANK], index: uint256) -> DynArray[uint256, MAX_READ]:
    """
    @notice Input elements reduced into output `index` (attrs [keepdim, *dims]), C order.
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
    assert count <= MAX_READ, "rule: reduction too long"
    flats: DynArray[uint256, MAX_READ] = []
    for combo: uint256 in range(count, bound=MAX_READ):
        rest: uint256 = combo
        for k: uint256 in range(rank, bound=MAX_RANK):
            d: uint256 = rank - 1 - k
            if reduced[d]:
                multi[d] = rest % source[d]
                rest //= source[d]
        flats.append(program._ravel(multi, source))
    return flats


@internal
@pure
def _mm(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256) -> DynArray[program.Read, MAX_LISTS]:
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
    n: uint256 = b[len(b) - 1]
    assert k <= MAX_READ, "rule: reduction too long"
    row: DynArray[uint256, MAX_READ] = []
    column: DynArray[uint256, MAX_READ] = []
    for t: uint256 in range(k, bound=MAX_READ):
        row.append(batch * m * k + i * k + t)
        column.append(batch * k * n + t * n + j)
    reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=pa, idx=row), program.Read(pos=pa + 1, idx=column)]
    if node.op == program.OP_ADDMM:
        reads.append(program.Read(pos=0, idx=[self._broadcast([i, j], ins[0].shape)]))
    return reads


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
def _conv(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256) -> DynArray[program.Read, MAX_LISTS]:
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
    assert w[1] * len(hs) * len(vs) <= MAX_READ, "rule: reduction too long"
    xs: DynArray[uint256, MAX_READ] = []
    ws: DynArray[uint256, MAX_READ] = []
    for ci: uint256 in range(w[1], bound=MAX_READ):
        for p: uint256 in range(len(hs), bound=MAX_READ):
            for q: uint256 in range(len(vs), bound=MAX_READ):
                xs.append(self._ravel4(o[0], g * w[1] + ci, hs[p], vs[q], x))
                ws.append(self._ravel4(o[1], ci, th[p], tw[q], w))
    reads: DynArray[program.Read, MAX_LISTS] = [program.Read(pos=0, idx=xs), program.Read(pos=1, idx=ws)]
    if len(a) > 7 and a[7] != 0:
        reads.append(program.Read(pos=2, idx=[o[1]]))
    return reads


@internal
@pure
def _conv_grad_input(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256) -> DynArray[program.Read, MAX_LISTS]:
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
    assert cout_g * len(ohs) * len(ows) <= MAX_READ, "rule: reduction too long"
    gos: DynArray[uint256, MAX_READ] = []
    ws: DynArray[uint256, MAX_READ] = []
    for c: uint256 in range(cout_g, bound=MAX_READ):
        co: uint256 = g * cout_g + c
        for p: uint256 in range(len(ohs), bound=MAX_READ):
            for q: uint256 in range(len(ows), bound=MAX_READ):
                gos.append(self._ravel4(o[0], co, ohs[p], ows[q], go))
                ws.append(self._ravel4(co, cl, th[p], tw[q], w))
    return [program.Read(pos=0, idx=gos), program.Read(pos=2, idx=ws)]


@internal
@pure
def _conv_grad_weight(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256) -> DynArray[program.Read, MAX_LISTS]:
    a: DynArray[uint256, program.MAX_ATTRS] = node.attrs
    o: DynArray[uint256, MAX_RANK] = program._unravel(index, node.shape)
    go: DynArray[uint256, MAX_RANK] = ins[0].shape
    x: DynArray[uint256, MAX_RANK] = ins[1].shape
    ci: uint256 = o[0] // (node.shape[0] // a[6]) * node.shape[1] + o[1]
    gos: DynArray[uint256, MAX_READ] = []
    xs: DynArray[uint256, MAX_READ] = []
    for n: uint256 in range(go[0], bound=MAX_DIM):
        for oh: uint256 in range(go[2], bound=MAX_DIM):
            h: int256 = convert(oh * a[0] + o[2] * a[4], int256) - convert(a[2], int256)
            if h < 0 or h >= convert(x[2], int256):
                continue
            for ow: uint256 in range(go[3], bound=MAX_DIM):
                v: int256 = convert(ow * a[1] + o[3] * a[5], int256) - convert(a[3], int256)
                if v >= 0 and v < convert(x[3], int256):
                    assert len(gos) < MAX_READ, "rule: reduction too long"
                    gos.append(self._ravel4(n, o[0], oh, ow, go))
                    xs.append(self._ravel4(n, ci, convert(h, uint256), convert(v, uint256), x))
    return [program.Read(pos=0, idx=gos), program.Read(pos=1, idx=xs)]


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
