# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title ReductionChecker
@notice The dissection inside a reduction (docs/arbitration.md §4.4,
        docs/judge.md §3.7): an element of a matmul or sum_rows node longer
        than the judge's 64 terms is opened here; the solver then posts partial
        sums over chunks of 64 terms on the game (`Arbitration.post_partials`),
        the challenger narrows them (`Arbitration.pick_partial`) and finally
        proves one chunk's partial wrong (`prove_chunk`: at most 64 terms
        re-computed by the judge) or the claim outside the any-order bound of
        the whole reduction given the partials' totals (`prove_fold`).
        Stateless like the ProofChecker: it reads the claims of a live dispute
        of `game` and reports the verified result to that game with the caller;
        the game accepts reports only from the reducers it was built with.
        A training program's node is dissected the same way through the
        ProgramReductionChecker; the fold proof here serves both.
"""

from arbitration import openings
from arbitration import reductions
from arbitration import structs


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

CHUNK: constant(uint256) = structs.CHUNK
MAX_READ: constant(uint256) = 512
MAX_PROOF_SIBLINGS: constant(uint256) = structs.MAX_PROOF_SIBLINGS

OP_MATMUL: constant(uint256) = 3
OP_SUM_ROWS: constant(uint256) = 10

# Arbitration phases and end reasons this contract names
PHASE_PROVE: constant(uint256) = 5
PHASE_SUM_PICK: constant(uint256) = 10
END_FOLD: constant(uint256) = 6


interface IGame:
    def context(dispute_id: uint256, caller: address, phase: uint256) -> structs.Context: view
    def reduction_context(dispute_id: uint256, caller: address, phase: uint256) -> structs.ReductionContext: view
    def record_reduction(dispute_id: uint256, caller: address, node: uint256, index: uint256, op: uint256, n: uint256, claimed: uint256): nonpayable
    def conclude_reduction(dispute_id: uint256, caller: address, reason: uint256): nonpayable

interface IReader:
    def open_elements(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, start: uint256, stride: uint256, count: uint256) -> DynArray[uint256, MAX_READ]: pure

interface ILongJudge:
    def check_fold(op: uint256, n: uint256, x: int256, abs_sum: uint256, top: int256, claimed: uint32) -> bool: pure


# the one-step judge (contracts/Judge.vy)
judge: public(immutable(address))
# the tensor openings (contracts/TensorReader.vy)
reader: public(immutable(address))


@deploy
def __init__(judge_: address, reader_: address):
    assert judge_ != empty(address) and reader_ != empty(address), "arbitration: zero address"
    judge = judge_
    reader = reader_


# ╔═══════════════════════════════════════════════════════════════╗
# ║ MOVES                                                         ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def open_reduction(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    node: uint256,
    index: uint256,
    nodes: structs.GraphOpening,
    trace: structs.TraceOpening,
    output: structs.TensorOpening,
):
    """
    @notice Move 5d (challenger, instead of a final proof): element `index` of
            node `node`, a matmul or sum_rows of more than 64 terms, is
            disputed. `nodes` / `trace` open the node, `output` the element.
            The solver must answer with the partials of its chunks.
    """
    c: structs.Context = staticcall IGame(game).context(dispute_id, msg.sender, PHASE_PROVE)
    graph_root: bytes32 = openings._named(c.spec_hash, c.trace_root, trace_root, commitments).graph_root
    openings._check_graph(graph_root, nodes)
    openings._check_trace(trace_root, nodes, trace)
    at: uint256 = openings._find(nodes, node)
    n: uint256 = self._length(nodes.nodes[at])
    numel: uint256 = openings._numel(nodes.nodes[at].shape)
    assert index < numel, "arbitration: no such element"
    claimed: uint256 = (staticcall IReader(reader).open_elements(trace.roots[at], numel, 4, output, index, 1, 1))[0]
    extcall IGame(game).record_reduction(dispute_id, msg.sender, node, index, nodes.nodes[at].op, n, claimed)


@external
def prove_chunk(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    nodes: structs.GraphOpening,
    trace: structs.TraceOpening,
    index: uint256,
    partial: structs.Partial,
    proof: DynArray[bytes32, MAX_PROOF_SIBLINGS],
    first: structs.TensorOpening,
    second: structs.TensorOpening,
):
    """
    @notice Final proof (challenger): partial `index` of the last post covers
            one chunk, and it is not that chunk's exact partial. `nodes` /
            `trace` open the disputed node and its inputs (increasing ids);
            `first` / `second` open the chunk's operands: op(A)[i, t0:t1] and
            op(B)[t0:t1, j] for a matmul, g[r0 + t0 : r0 + t1, j] for a sum_rows.
    """
    r: structs.ReductionContext = staticcall IGame(game).reduction_context(dispute_id, msg.sender, PHASE_SUM_PICK)
    graph_root: bytes32 = openings._named(r.spec_hash, r.trace_root, trace_root, commitments).graph_root
    openings._check_graph(graph_root, nodes)
    openings._check_trace(trace_root, nodes, trace)
    t0: uint256 = reductions._chunk(r, index, partial, proof)
    at: uint256 = openings._find(nodes, r.node)
    desc: structs.Descriptor = nodes.nodes[at]
    count: uint256 = min(t0 + CHUNK, r.n) - t0
    a_at: uint256 = openings._find(nodes, desc.inputs[0])
    a_shape: DynArray[uint256, 2] = nodes.nodes[a_at].shape
    assert len(a_shape) == 2, "arbitration: bad descriptor"
    a_start: uint256 = 0
    a_stride: uint256 = 1
    a: DynArray[uint32, CHUNK] = []
    b: DynArray[uint32, CHUNK] = []
    if desc.op == OP_MATMUL:
        cols: uint256 = desc.shape[1]
        i: uint256 = r.index // cols
        j: uint256 = r.index % cols
        k0: uint256 = desc.attrs[2] + t0
        if desc.attrs[0] == 0:
            a_start = i * a_shape[1] + k0
        else:
            a_start = k0 * a_shape[1] + i
            a_stride = a_shape[1]
        b_at: uint256 = openings._find(nodes, desc.inputs[1])
        b_shape: DynArray[uint256, 2] = nodes.nodes[b_at].shape
        assert len(b_shape) == 2, "arbitration: bad descriptor"
        b_start: uint256 = k0 * b_shape[1] + j
        b_stride: uint256 = b_shape[1]
        if desc.attrs[1] != 0:
            b_start = j * b_shape[1] + k0
            b_stride = 1
        b = self._read(trace.roots[b_at], openings._numel(b_shape), second, b_start, b_stride, count)
    else:
        a_start = (desc.attrs[0] + t0) * a_shape[1] + r.index
        a_stride = a_shape[1]
    a = self._read(trace.roots[a_at], openings._numel(a_shape), first, a_start, a_stride, count)

    reductions._conclude_chunk(judge, game, dispute_id, r, r.op, a, b, partial)


@external
def prove_fold(game: address, dispute_id: uint256, partials_root: bytes32):
    """
    @notice Final proof (challenger), while the last post covers the whole
            reduction (its root named): the claim is outside the any-order bound
            of the full reduction given the posted partials' totals.
    """
    r: structs.ReductionContext = staticcall IGame(game).reduction_context(dispute_id, msg.sender, PHASE_SUM_PICK)
    assert partials_root == r.partials_root, "arbitration: wrong partials root"
    assert r.whole, "arbitration: the fold is checked on the whole reduction"
    consistent: bool = staticcall ILongJudge(judge).check_fold(
        r.op, r.n, r.total.x, r.total.abs_sum, r.total.top, convert(r.claimed, uint32)
    )
    assert not consistent, "arbitration: partials add up to the claim"
    extcall IGame(game).conclude_reduction(dispute_id, msg.sender, END_FOLD)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _length(desc: structs.Descriptor) -> uint256:
    """
    @notice Terms of one output element of a matmul [ta, tb, k0, k1] or
            sum_rows [r0, r1] node; only reductions longer than a chunk.
    """
    n: uint256 = 0
    if desc.op == OP_MATMUL:
        assert len(desc.attrs) == 4 and len(desc.shape) == 2 and len(desc.inputs) == 2 and desc.attrs[3] > desc.attrs[2], "arbitration: bad descriptor"
        n = desc.attrs[3] - desc.attrs[2]
    else:
        assert desc.op == OP_SUM_ROWS, "arbitration: not a reduction"
        assert len(desc.attrs) == 2 and len(desc.shape) == 1 and len(desc.inputs) == 1 and desc.attrs[1] > desc.attrs[0], "arbitration: bad descriptor"
        n = desc.attrs[1] - desc.attrs[0]
    assert n > CHUNK, "arbitration: reduction fits the judge"
    assert n <= structs.MAX_LONG_REDUCTION, "arbitration: reduction too long"
    return n


@view
@internal
def _read(root: bytes32, numel: uint256, opening: structs.TensorOpening, start: uint256, stride: uint256, count: uint256) -> DynArray[uint32, CHUNK]:
    out: DynArray[uint32, CHUNK] = []
    for v: uint256 in staticcall IReader(reader).open_elements(root, numel, 4, opening, start, stride, count):
        out.append(convert(v, uint32))
    return out
