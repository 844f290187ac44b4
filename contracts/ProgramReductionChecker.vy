# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title ProgramReductionChecker
@notice The dissection inside a reduction (docs/arbitration.md §4.4) over a
        training program's node (§11): an element of a float32 linear reduction
        longer than the judge's 64 terms is opened here
        (`open_program_reduction`); the solver posts partial sums over chunks
        of 64 terms on the game, the challenger narrows them and finally proves
        one chunk's partial wrong (`prove_program_chunk`: at most 64 terms,
        named by the program index map, re-computed by the judge) or the claim
        outside the any-order bound of the whole reduction given the posted
        partials' totals (`prove_fold`).
        The reductions: mm, bmm, addmm, conv2d and its input and weight
        gradients (products of the two operands, then the bias as bias * 1.0);
        sum, conv2d_grad_bias, layer_norm_grad_bias (plain terms); and the
        rows of the softmax family longer than 64 (docs/judge-programs.md §5):
        softmax, safe_softmax and log_softmax (pivoted rows: each chunk
        checked by the ProgramRowJudge), softmax_grad and log_softmax_grad
        (the linear sums g·y and g: chunks checked by the judge); a row's fold
        is `prove_program_row` (the element against the row's totals).
        Stateless like the other checkers: it reads the claims of a live
        dispute of `game` and reports to that game with the caller.
"""

from arbitration import openings
from arbitration import program_openings
from arbitration import reductions
from arbitration import structs
from judge import program


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

CHUNK: constant(uint256) = structs.CHUNK
MAX_PROOF_SIBLINGS: constant(uint256) = structs.MAX_PROOF_SIBLINGS
MAX_INPUTS: constant(uint256) = structs.MAX_PROGRAM_INPUTS
MAX_LISTS: constant(uint256) = program.MAX_LISTS
MAX_READ: constant(uint256) = program.MAX_READ

# the judge's reduction kinds (contracts/Judge.vy): terms a_k * b_k, or plain a_k
OP_MATMUL: constant(uint256) = 3
OP_SUM_ROWS: constant(uint256) = 10
# float32 1.0: a bias enters a product reduction as bias * 1.0
ONE_F32: constant(uint32) = 1065353216

# a softmax-family row's kind: ROW_BASE + its op code; the longest row (ProgramRowJudge.MAX_ROW)
ROW_BASE: constant(uint256) = structs.ROW_BASE
MAX_ROW: constant(uint256) = 32_768

# Arbitration phases and end reasons this contract names
PHASE_PROVE: constant(uint256) = 5
PHASE_SUM_PICK: constant(uint256) = 10
END_FOLD: constant(uint256) = 6


interface IGame:
    def context(dispute_id: uint256, caller: address, phase: uint256) -> structs.Context: view
    def reduction_context(dispute_id: uint256, caller: address, phase: uint256) -> structs.ReductionContext: view
    def record_reduction(dispute_id: uint256, caller: address, node: uint256, index: uint256, op: uint256, n: uint256, claimed: uint256): nonpayable
    def conclude_reduction(dispute_id: uint256, caller: address, reason: uint256): nonpayable

interface ILongJudge:
    def check_fold(op: uint256, n: uint256, x: int256, abs_sum: uint256, top: int256, claimed: uint32) -> bool: pure

interface IRowJudge:
    def check_chunk(row: DynArray[uint32, CHUNK], t0: uint256, n: uint256, top: int256, x: int256, abs_sum: uint256, leaf_top: int256) -> bool: pure
    def check_pivoted(op: uint256, n: uint256, j: uint256, z: int256, x: int256, abs_sum: uint256, top: int256, claimed: int256) -> bool: pure
    def check_linear(op: uint256, n: uint256, g: int256, y: int256, x: int256, abs_sum: uint256, top: int256, claimed: int256) -> bool: pure

interface IProgramIndex:
    def chunk_inputs(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, t0: uint256) -> (uint256, DynArray[program.Read, MAX_LISTS]): pure


# the one-step judge (contracts/Judge.vy: check_chunk, check_fold)
judge: public(immutable(address))
# the tensor openings (contracts/TensorReader.vy)
reader: public(immutable(address))
# the program index map (contracts/ProgramIndex.vy)
index_map: public(immutable(address))
# the rows' chunk and fold checks (contracts/ProgramRowJudge.vy)
row_judge: public(immutable(address))


@deploy
def __init__(judge_: address, reader_: address, index_map_: address, row_judge_: address):
    assert judge_ != empty(address) and reader_ != empty(address) and index_map_ != empty(address) and row_judge_ != empty(address), "arbitration: zero address"
    judge = judge_
    reader = reader_
    index_map = index_map_
    row_judge = row_judge_


# ╔═══════════════════════════════════════════════════════════════╗
# ║ MOVES                                                         ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def open_program_reduction(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    node: uint256,
    index: uint256,
    nodes: structs.ProgramOpening,
    trace: structs.TraceOpening,
    output: structs.TensorOpening,
):
    """
    @notice Move 5d over a program's trace (challenger, instead of a final
            proof): element `index` of node `node`, a float32 linear reduction
            of more than 64 terms or a softmax-family row of more than 64
            entries (at most 32,768), is disputed. `nodes` / `trace` open the node
            and its distinct inputs (increasing ids), `output` the element. The
            solver must answer with the partials of its chunks.
    """
    c: structs.Context = staticcall IGame(game).context(dispute_id, msg.sender, PHASE_PROVE)
    target: program.Node = empty(program.Node)
    ins: DynArray[program.Input, MAX_INPUTS] = []
    where: DynArray[uint256, MAX_INPUTS] = []
    at: uint256 = 0
    target, ins, where, at = self._program_node(c.spec_hash, c.trace_root, trace_root, commitments, prog, nodes, trace, node)
    n: uint256 = 0
    kind: uint256 = ROW_BASE + target.op
    if self._is_row(target.op):
        assert target.dtype == program.F32 and len(target.attrs) > 0 and target.attrs[0] < len(target.shape), "arbitration: bad descriptor"
        n = target.shape[target.attrs[0]]
        assert n <= MAX_ROW, "arbitration: reduction too long"
    else:
        lists: DynArray[program.Read, MAX_LISTS] = []
        n, lists = staticcall IProgramIndex(index_map).chunk_inputs(target, ins, index, 0)
        kind = self._kind(target.op)
    assert n > CHUNK, "arbitration: reduction fits the judge"
    assert n <= structs.MAX_LONG_REDUCTION, "arbitration: reduction too long"
    claimed: int256 = program_openings._element(reader, nodes.nodes[at], trace.roots[at], output, index)
    extcall IGame(game).record_reduction(dispute_id, msg.sender, node, index, kind, n, convert(claimed, uint256))


@external
def prove_program_chunk(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    nodes: structs.ProgramOpening,
    trace: structs.TraceOpening,
    index: uint256,
    partial: structs.Partial,
    proof: DynArray[bytes32, MAX_PROOF_SIBLINGS],
    reads: DynArray[structs.TensorOpening, MAX_LISTS],
):
    """
    @notice Final proof (challenger) over a program's node: partial `index` of
            the last post covers one chunk, and it is not that chunk's exact
            partial. `nodes` / `trace` open the disputed node and its distinct
            inputs; `reads[k]` opens the elements of the k-th read of
            `ProgramIndex.chunk_inputs` for the chunk (the product operands,
            then the bias if the chunk holds it; or the plain terms).
    """
    r: structs.ReductionContext = staticcall IGame(game).reduction_context(dispute_id, msg.sender, PHASE_SUM_PICK)
    t0: uint256 = reductions._chunk(r, index, partial, proof)
    target: program.Node = empty(program.Node)
    ins: DynArray[program.Input, MAX_INPUTS] = []
    where: DynArray[uint256, MAX_INPUTS] = []
    at: uint256 = 0
    target, ins, where, at = self._program_node(r.spec_hash, r.trace_root, trace_root, commitments, prog, nodes, trace, r.node)
    lists: DynArray[program.Read, MAX_LISTS] = []
    kind: uint256 = r.op
    if r.op >= ROW_BASE:
        lists = self._row_reads(target, r.index, t0, r.n)
        kind = OP_MATMUL
        if len(lists) == 1:
            kind = OP_SUM_ROWS
    else:
        n: uint256 = 0
        n, lists = staticcall IProgramIndex(index_map).chunk_inputs(target, ins, r.index, t0)
    assert len(reads) == len(lists), "arbitration: wrong number of reads"
    a: DynArray[uint32, CHUNK] = []
    b: DynArray[uint32, CHUNK] = []
    for k: uint256 in range(len(lists), bound=MAX_LISTS):
        values: DynArray[int256, MAX_READ] = program_openings._read(reader, lists[k], where, nodes, trace, reads[k])
        for v: int256 in values:
            if kind == OP_SUM_ROWS or k == 0 or k == 2:
                a.append(convert(v, uint32))
            else:
                b.append(convert(v, uint32))
            if k == 2:
                b.append(ONE_F32)
    if r.op >= ROW_BASE and r.op - ROW_BASE <= program.OP_LOG_SOFTMAX:
        # a pivoted row: its entries against the pivot the totals name
        reductions._conclude(game, dispute_id, staticcall IRowJudge(row_judge).check_chunk(
            a, t0, r.n, r.total.top, partial.x, partial.abs_sum, partial.top
        ))
        return
    reductions._conclude_chunk(judge, game, dispute_id, r, kind, a, b, partial)


@external
def prove_fold(game: address, dispute_id: uint256, partials_root: bytes32):
    """
    @notice Final proof (challenger) over a linear reduction, while the last
            post covers the whole reduction (its root named): the claim is
            outside the any-order bound of the full reduction given the posted
            partials' totals.
    """
    r: structs.ReductionContext = staticcall IGame(game).reduction_context(dispute_id, msg.sender, PHASE_SUM_PICK)
    assert partials_root == r.partials_root, "arbitration: wrong partials root"
    assert r.whole and r.op < ROW_BASE, "arbitration: the fold is checked on the whole reduction"
    consistent: bool = staticcall ILongJudge(judge).check_fold(
        r.op, r.n, r.total.x, r.total.abs_sum, r.total.top, convert(r.claimed, uint32)
    )
    assert not consistent, "arbitration: partials add up to the claim"
    extcall IGame(game).conclude_reduction(dispute_id, msg.sender, END_FOLD)


@external
def prove_program_row(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    nodes: structs.ProgramOpening,
    trace: structs.TraceOpening,
    partials_root: bytes32,
    reads: DynArray[structs.TensorOpening, 2],
):
    """
    @notice Final proof (challenger) over a softmax-family row, while the last
            post covers the whole row (its root named): the element is outside
            its rule's window given the posted totals. `nodes` / `trace` open
            the node and its inputs; `reads[k]` opens input k's element at the
            disputed index (the entry z; or g and y for the gradients).
    """
    r: structs.ReductionContext = staticcall IGame(game).reduction_context(dispute_id, msg.sender, PHASE_SUM_PICK)
    assert partials_root == r.partials_root, "arbitration: wrong partials root"
    assert r.whole and r.op >= ROW_BASE, "arbitration: the fold is checked on the whole row"
    target: program.Node = empty(program.Node)
    ins: DynArray[program.Input, MAX_INPUTS] = []
    where: DynArray[uint256, MAX_INPUTS] = []
    at: uint256 = 0
    target, ins, where, at = self._program_node(r.spec_hash, r.trace_root, trace_root, commitments, prog, nodes, trace, r.node)
    op: uint256 = r.op - ROW_BASE
    j: uint256 = 0
    _: uint256 = 0
    _, _, j = program._along(target.shape, r.index, target.attrs[0])
    x: int256 = program_openings._read(reader, program.Read(pos=0, idx=[r.index]), where, nodes, trace, reads[0])[0]
    consistent: bool = False
    if op <= program.OP_LOG_SOFTMAX:
        consistent = staticcall IRowJudge(row_judge).check_pivoted(op, r.n, j, x, r.total.x, r.total.abs_sum, r.total.top, convert(r.claimed, int256))
    else:
        y: int256 = program_openings._read(reader, program.Read(pos=1, idx=[r.index]), where, nodes, trace, reads[1])[0]
        consistent = staticcall IRowJudge(row_judge).check_linear(op, r.n, x, y, r.total.x, r.total.abs_sum, r.total.top, convert(r.claimed, int256))
    assert not consistent, "arbitration: partials add up to the claim"
    extcall IGame(game).conclude_reduction(dispute_id, msg.sender, END_FOLD)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _program_node(
    spec_hash: bytes32,
    claimed_root: bytes32,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    nodes: structs.ProgramOpening,
    trace: structs.TraceOpening,
    node: uint256,
) -> (program.Node, DynArray[program.Input, MAX_INPUTS], DynArray[uint256, MAX_INPUTS], uint256):
    """
    @notice Node `node` of the task's program and its inputs, opened against the
            named trace root: (node, inputs, where each input is in `nodes`,
            where the node is).
    """
    graph_root: bytes32 = openings._named(spec_hash, claimed_root, trace_root, commitments).graph_root
    program_openings._check_program(graph_root, prog, nodes)
    program_openings._check_trace(trace_root, nodes, trace)
    at: uint256 = program_openings._find(nodes, node)
    d: structs.ProgramDescriptor = nodes.nodes[at]
    ins: DynArray[program.Input, MAX_INPUTS] = []
    where: DynArray[uint256, MAX_INPUTS] = []
    ins, where = program_openings._inputs(nodes, d)
    return program.Node(op=d.op, dtype=d.dtype, shape=d.shape, attrs=d.attrs), ins, where, at


@internal
@pure
def _row_reads(target: program.Node, index: uint256, t0: uint256, n: uint256) -> DynArray[program.Read, MAX_LISTS]:
    """
    @notice The entries t0, t0 + 1, ... (at most 64) of element `index`'s
            softmax-family row, in each input the chunk proof reads: the row
            (pivoted), g (log_softmax_grad), g and y (softmax_grad).
    """
    first: uint256 = 0
    stride: uint256 = 0
    _: uint256 = 0
    first, stride, _ = program._along(target.shape, index, target.attrs[0])
    idx: DynArray[uint256, MAX_READ] = []
    for t: uint256 in range(t0, t0 + CHUNK, bound=CHUNK):
        if t == n:
            break
        idx.append(first + t * stride)
    if target.op == program.OP_SOFTMAX_GRAD:
        return [program.Read(pos=0, idx=idx), program.Read(pos=1, idx=idx)]
    return [program.Read(pos=0, idx=idx)]


@internal
@pure
def _is_row(op: uint256) -> bool:
    return op >= program.OP_SOFTMAX and op <= program.OP_LOG_SOFTMAX_GRAD


@internal
@pure
def _kind(op: uint256) -> uint256:
    """
    @notice How the judge sums a program reduction's terms: plain values
            (sum_rows) or products (matmul).
    """
    if op == program.OP_SUM or op == program.OP_CONV2D_GRAD_BIAS or op == program.OP_LAYER_NORM_GRAD_BIAS:
        return OP_SUM_ROWS
    return OP_MATMUL
