# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title ProgramChecker
@notice The final proofs of the dispute game over a training program's step
        (docs/arbitration.md §11): the trace commits one output tensor root per
        program node; a challenger proves that one of them is wrong, or
        demands elements the solver must post (through the ProofChecker).
        Stateless: it reads the claims of a live dispute of `game` and reports
        the verified result to that game with the caller; the game accepts
        reports only from the program checker it was built with.

        Final proofs (each names the trace root it answers and opens the
        program's descriptors in its committed root):
          prove_element       one output element of one node is rejected by the
                              program judge given the input elements the index
                              map names (ProgramIndex, ProgramJudge)
          prove_output_link   the nodes the program outputs (the next state) do
                              not hash to the state after the step
          prove_leaf_link     a leaf is not what the task commits: a `state`
                              leaf is not its tensor of the checkpoint before
                              the step, a `const` leaf not the tensor its attrs
                              commit, the `hyper` leaf not row `step` of the
                              hyper table, the `rng` leaf not step_key(seed,
                              step), a `data_x` / `data_y` row not the dataset
                              row the seed derives for the step
@dev    A task's graph root is keccak256(abi.encode(program_root, hyper_root))
        with program_root = keccak256(abi.encode(nodes_root,
        keccak256(abi.encode(uint256[] outputs)))) (offchain/ml/task.py,
        offchain/ml/program.py).
"""

from arbitration import merkle
from arbitration import openings
from arbitration import program_openings
from arbitration import structs
from judge import program


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

MAX_INPUTS: constant(uint256) = structs.MAX_PROGRAM_INPUTS
MAX_RANK: constant(uint256) = structs.MAX_PROGRAM_RANK
MAX_STATE: constant(uint256) = structs.MAX_STATE
MAX_OPEN_NODES: constant(uint256) = structs.MAX_OPEN_NODES
# trace openings of one output link (each at most 65 roots and 128 siblings)
MAX_LINK_OPENINGS: constant(uint256) = 16
MAX_PROOF_SIBLINGS: constant(uint256) = structs.MAX_PROOF_SIBLINGS
MAX_ROW_BYTES: constant(uint256) = structs.MAX_ROW_BYTES
MAX_READ: constant(uint256) = program.MAX_READ
MAX_LISTS: constant(uint256) = program.MAX_LISTS
# largest dimension accepted from a descriptor
MAX_DIM: constant(uint256) = 2**32

# program leaf opcodes (offchain/ml/ops.py)
OP_STATE: constant(uint256) = 0
OP_DATA_X: constant(uint256) = 1
OP_DATA_Y: constant(uint256) = 2
OP_CONST: constant(uint256) = 12
OP_HYPER: constant(uint256) = 13
OP_RNG: constant(uint256) = 14
# step_key(seed, step) = uint32(keccak256(abi.encode(seed, step, DROPOUT_DOMAIN)))
DROPOUT_DOMAIN: constant(uint256) = 2

# Arbitration phases and end reasons this contract names
PHASE_PROVE: constant(uint256) = 5
END_LINK: constant(uint256) = 2
END_DATA: constant(uint256) = 3
END_ELEMENT: constant(uint256) = 4


interface IGame:
    def context(dispute_id: uint256, caller: address, phase: uint256) -> structs.Context: view
    def record_demand(dispute_id: uint256, caller: address, node: uint256, start: uint256, count: uint256, numel: uint256, itemsize: uint256, n_nodes: uint256): payable
    def conclude(dispute_id: uint256, caller: address, reason: uint256): nonpayable

interface IReader:
    def range_root(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, start: uint256, count: uint256) -> bytes32: pure
    def row_differs(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, row: uint256, index: uint256, dataset_root: bytes32, dataset_rows: uint256, data: structs.DataRow) -> bool: pure

interface IProgramJudge:
    def index_map() -> address: view
    def check(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS], claimed: int256) -> bool: view

interface IProgramIndex:
    def two_stage(op: uint256) -> bool: pure
    def element_inputs(node: program.Node, ins: DynArray[program.Input, MAX_INPUTS], index: uint256, first: DynArray[int256, MAX_READ], second: bool) -> DynArray[program.Read, MAX_LISTS]: pure


# the program judge (contracts/ProgramJudge.vy) and its index map (contracts/ProgramIndex.vy)
judge: public(immutable(address))
index_map: public(immutable(address))
# the tensor openings (contracts/TensorReader.vy)
reader: public(immutable(address))


@deploy
def __init__(judge_: address, reader_: address):
    """
    @param judge_ The ProgramJudge (its index map is the one this checker asks for reads).
    @param reader_ The TensorReader.
    """
    assert judge_ != empty(address) and reader_ != empty(address), "arbitration: zero address"
    judge = judge_
    reader = reader_
    index_map = staticcall IProgramJudge(judge_).index_map()


# ╔═══════════════════════════════════════════════════════════════╗
# ║ DATA AVAILABILITY                                             ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@payable
def demand_elements(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    nodes: structs.ProgramOpening,
    start: uint256,
    count: uint256,
):
    """
    @notice Move 5' over a program's trace (challenger): the solver must post
            elements [start, start + count) of the output of the node `nodes`
            opens (one descriptor), within its clock, through
            `ProofChecker.post_elements` (float32 elements of 4 bytes, int64 and
            bool of 8). The value sent pays `Arbitration.demand_fee`.
    """
    self._open(game, dispute_id, trace_root, commitments, prog, nodes)
    assert len(nodes.nodes) == 1, "arbitration: one node per demand"
    d: structs.ProgramDescriptor = nodes.nodes[0]
    extcall IGame(game).record_demand(
        dispute_id, msg.sender, d.id, start, count, program_openings._numel(d.shape), program_openings._itemsize(d.dtype), nodes.n_nodes,
        value=msg.value
    )


# ╔═══════════════════════════════════════════════════════════════╗
# ║ ONE ELEMENT                                                   ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def prove_element(
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
    reads: DynArray[structs.TensorOpening, MAX_LISTS],
):
    """
    @notice Element `index` (flat, C order) of node `node`'s output is
            inconsistent with its committed inputs: the program judge rejects
            it. `nodes` / `trace` open the node and its distinct inputs
            (increasing ids); `output` opens the element; `reads[k]` opens the
            elements of the k-th read of `ProgramIndex.element_inputs` in its
            input's output tensor (both stages for a two-stage op, the second
            at the addresses the first stage's values give). A bool element
            committed as anything but 0 or 1 is wrong without reads.
    """
    self._open(game, dispute_id, trace_root, commitments, prog, nodes)
    program_openings._check_trace(trace_root, nodes, trace)
    at: uint256 = program_openings._find(nodes, node)
    d: structs.ProgramDescriptor = nodes.nodes[at]
    assert len(d.inputs) > 0 and d.op != OP_CONST and d.op != OP_HYPER and d.op != OP_RNG, "arbitration: node has no one-step check"
    target: program.Node = program.Node(op=d.op, dtype=d.dtype, shape=d.shape, attrs=d.attrs)
    ins: DynArray[program.Input, MAX_INPUTS] = []
    where: DynArray[uint256, MAX_INPUTS] = []
    # program_openings._inputs inline: returning two arrays costs this contract 460 bytes of code
    for i: uint256 in d.inputs:
        k: uint256 = program_openings._find(nodes, i)
        where.append(k)
        ins.append(program.Input(dtype=nodes.nodes[k].dtype, shape=nodes.nodes[k].shape))
    claimed: int256 = program_openings._element(reader, d, trace.roots[at], output, index)

    if d.dtype == program.BOOL and claimed != 0 and claimed != 1:
        # a bool output is committed as int64 0/1: any other value is wrong whatever the inputs
        extcall IGame(game).conclude(dispute_id, msg.sender, END_ELEMENT)
        return

    nothing: DynArray[int256, MAX_READ] = []
    lists: DynArray[program.Read, MAX_LISTS] = staticcall IProgramIndex(index_map).element_inputs(target, ins, index, nothing, False)
    values: DynArray[DynArray[int256, MAX_READ], MAX_LISTS] = []
    if staticcall IProgramIndex(index_map).two_stage(d.op):
        values.append(program_openings._read(reader, lists[0], where, nodes, trace, reads[0]))
        lists = staticcall IProgramIndex(index_map).element_inputs(target, ins, index, values[0], True)
    assert len(reads) == len(lists), "arbitration: wrong number of reads"
    for k: uint256 in range(len(values), len(lists), bound=MAX_LISTS):
        values.append(program_openings._read(reader, lists[k], where, nodes, trace, reads[k]))

    consistent: bool = staticcall IProgramJudge(judge).check(target, ins, index, values, claimed)
    assert not consistent, "arbitration: element is consistent"
    extcall IGame(game).conclude(dispute_id, msg.sender, END_ELEMENT)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ LINKS                                                         ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def prove_output_link(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    outputs: DynArray[uint256, MAX_STATE],
    nodes: structs.ProgramOpening,
    traces: DynArray[structs.TraceOpening, MAX_LINK_OPENINGS],
):
    """
    @notice The program's outputs (the next state, in state order) do not hash
            to the state root after the step. `nodes` opens any one descriptor
            (it fixes the node count); `traces` open the roots of the output
            nodes in state order, each the next len(roots) of `outputs` (ids
            increasing within one opening, which stays within one multiproof's
            bounds); the Merkle root of those roots must differ from the state
            after.
    """
    c: structs.Context = self._open(game, dispute_id, trace_root, commitments, prog, nodes)
    count: uint256 = self._state_count(prog, outputs)
    leaves: DynArray[bytes32, merkle.MAX_ROOT_LEAVES] = []
    for t: structs.TraceOpening in traces:
        ids: DynArray[uint256, MAX_OPEN_NODES] = []
        for root: bytes32 in t.roots:
            ids.append(outputs[len(leaves)])
            leaves.append(root)
        assert merkle._verify(trace_root, ids, t.roots, t.siblings, nodes.n_nodes), "arbitration: trace opening invalid"
    assert len(leaves) == count, "arbitration: trace opening invalid"
    assert merkle._merkle_root(leaves) != c.state_after, "arbitration: links hold"
    extcall IGame(game).conclude(dispute_id, msg.sender, END_LINK)


@external
def prove_leaf_link(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    nodes: structs.ProgramOpening,
    trace: structs.TraceOpening,
    opening: structs.TensorOpening,
    outputs: DynArray[uint256, MAX_STATE],
    leaf: bytes32,
    siblings: DynArray[bytes32, MAX_PROOF_SIBLINGS],
    row: uint256,
    data: structs.DataRow,
):
    """
    @notice The leaf `nodes` / `trace` open is not what the task commits
            (arguments a kind does not use are ignored):
            `state` with attrs [i]: not tensor i of the checkpoint before the
            step (`leaf`, its root, proven at position i of the state root
            before the step over len(outputs) leaves: the state count);
            `const`: its root is not its attrs[0];
            `hyper`: its root is not that of row `step` of the hyper table
            (`opening` opens the row in hyper_root, a (steps, H) float32 tensor);
            `rng`: its root is not that of the int64 scalar step_key(seed, step);
            `data_x` (B, D) float32 / `data_y` (B,) int64 (reason data, the
            others link): row `row` (`opening` opens it) is not dataset row
            idx = uint256(keccak256(abi.encode(seed, step, row))) % dataset_rows,
            which `data` proves against the dataset root.
    """
    c: structs.Context = self._open(game, dispute_id, trace_root, commitments, prog, nodes)
    program_openings._check_trace(trace_root, nodes, trace)
    d: structs.ProgramDescriptor = nodes.nodes[0]
    assert len(nodes.nodes) == 1, "arbitration: not a linked leaf"
    expected: bytes32 = empty(bytes32)
    if d.op == OP_STATE:
        count: uint256 = self._state_count(prog, outputs)
        assert len(d.attrs) == 1 and d.attrs[0] < count, "arbitration: bad descriptor"
        assert merkle._verify(c.state_before, [d.attrs[0]], [leaf], siblings, count), "arbitration: state opening invalid"
        expected = leaf
    elif d.op == OP_CONST:
        assert len(d.attrs) == 1, "arbitration: bad descriptor"
        expected = convert(d.attrs[0], bytes32)
    elif d.op == OP_HYPER:
        assert len(d.shape) == 1 and d.dtype == program.F32 and d.shape[0] <= MAX_DIM, "arbitration: bad descriptor"
        width: uint256 = d.shape[0]
        expected = staticcall IReader(reader).range_root(prog.hyper_root, commitments.steps * width, 4, opening, c.step * width, width)
    elif d.op == OP_RNG:
        assert len(d.shape) == 0 and d.dtype == program.I64, "arbitration: bad descriptor"
        key: uint256 = convert(keccak256(abi_encode(commitments.seed, c.step, DROPOUT_DOMAIN)), uint256) & 4294967295
        expected = keccak256(abi_encode(keccak256(convert(self._swap(key, 8) << 192, bytes32)), convert(1, uint256)))
    elif d.op == OP_DATA_X or d.op == OP_DATA_Y:
        self._data(c.step, commitments, d, trace.roots[0], opening, row, data)
        extcall IGame(game).conclude(dispute_id, msg.sender, END_DATA)
        return
    else:
        raise "arbitration: not a linked leaf"
    assert trace.roots[0] != expected, "arbitration: links hold"
    extcall IGame(game).conclude(dispute_id, msg.sender, END_LINK)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@view
def _open(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    nodes: structs.ProgramOpening,
) -> structs.Context:
    """
    @notice The caller's turn to prove against the named trace root, the
            task's commitments, the program's commitment in them, and the
            descriptors of `nodes` (strictly increasing ids) in its nodes_root.
    """
    c: structs.Context = staticcall IGame(game).context(dispute_id, msg.sender, PHASE_PROVE)
    graph_root: bytes32 = openings._named(c.spec_hash, c.trace_root, trace_root, commitments).graph_root
    program_openings._check_program(graph_root, prog, nodes)
    return c


@internal
@view
def _data(
    step: uint256,
    commitments: structs.Commitments,
    d: structs.ProgramDescriptor,
    root: bytes32,
    opening: structs.TensorOpening,
    row: uint256,
    data: structs.DataRow,
):
    """
    @notice Revert unless row `row` of the data leaf `d` (output root `root`) differs from the
            dataset row the seed derives for `step`, which `data` proves.
    """
    assert (d.op == OP_DATA_X and len(d.shape) == 2 and d.dtype == program.F32) or (
        d.op == OP_DATA_Y and len(d.shape) == 1 and d.dtype == program.I64
    ), "arbitration: not a data node"
    assert row < d.shape[0] and d.shape[0] <= MAX_DIM, "arbitration: no such row"

    index: uint256 = convert(keccak256(abi_encode(commitments.seed, step, row)), uint256) % commitments.dataset_rows
    numel: uint256 = d.shape[0]
    itemsize: uint256 = 8
    if d.op == OP_DATA_X:
        assert d.shape[1] <= MAX_DIM and len(data.x_row) == d.shape[1] * 4, "arbitration: row width mismatch"
        numel *= d.shape[1]
        itemsize = 4
    differs: bool = staticcall IReader(reader).row_differs(
        root, numel, itemsize, opening, row, index, commitments.dataset_root, commitments.dataset_rows, data
    )
    assert differs, "arbitration: data row matches"


@internal
@pure
def _state_count(prog: structs.ProgramCommit, outputs: DynArray[uint256, MAX_STATE]) -> uint256:
    """
    @notice The program's outputs (committed in its root): their count is the state's.
    """
    assert len(outputs) > 0 and keccak256(abi_encode(outputs)) == prog.outputs_hash, "arbitration: outputs do not match the program"
    return len(outputs)


@internal
@pure
def _swap(word: uint256, size: uint256) -> uint256:
    """
    @notice Reverse the byte order of a `size`-byte word (little-endian bytes to integer).
    """
    out: uint256 = 0
    w: uint256 = word
    for i: uint256 in range(8):
        if i == size:
            break
        out = (out << 8) | (w & 255)
        w >>= 8
    return out
