# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title ProofChecker
@notice The proof side of the dispute game (docs/arbitration.md §4): checks a
        challenger's final proof or data-availability demand, or a solver's
        posted elements, against the claims a live dispute of `game` holds,
        and reports the verified result to that game with the caller. It holds
        no state: a game accepts reports only from the checker it was built
        with, and the checker reports only to the game it read the claims
        from, so a fake game can learn nothing and change nothing.

        Final proofs (each names the trace root it answers):
          prove_link_mismatch  the parameter block of the trace is not the
                               state before the step, or the update block is
                               not the state after it
          prove_data_mismatch  a data_x / data_y row is not the dataset row
                               the seed derives for that step
          prove_element        one output element of one node is rejected by
                               the one-step judge given the node's inputs
@dev    Large openings stay in calldata; the stateless TensorReader
        (contracts/TensorReader.vy) verifies one tensor opening per static call
        and reads elements from it in a fresh memory frame, so no frame holds
        more than one opening. Demand fees pass through to the game.
"""

from interfaces import IJudge
from arbitration import merkle
from arbitration import openings
from arbitration import structs


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

LEAF_BYTES: constant(uint256) = structs.LEAF_BYTES
MAX_PARAMS: constant(uint256) = structs.MAX_PARAMS
MAX_OPEN_NODES: constant(uint256) = structs.MAX_OPEN_NODES
MAX_NODE_SIBLINGS: constant(uint256) = structs.MAX_NODE_SIBLINGS
MAX_OPEN_LEAVES: constant(uint256) = structs.MAX_OPEN_LEAVES
MAX_ROW_BYTES: constant(uint256) = structs.MAX_ROW_BYTES
# elements one opening read returns (a demand of 512; a softmax row of 256; a column of 64)
MAX_READ: constant(uint256) = 512
# judge limits (contracts/Judge.vy)
MAX_CLASSES: constant(uint256) = 256
MAX_REDUCTION: constant(uint256) = 64
MAX_AUX: constant(uint256) = 4

# graph opcodes (docs/proof-of-learning.md §5)
OP_PARAM: constant(uint256) = 0
OP_DATA_X: constant(uint256) = 1
OP_DATA_Y: constant(uint256) = 2
OP_MATMUL: constant(uint256) = 3
OP_ADD: constant(uint256) = 4
OP_ADD_BIAS: constant(uint256) = 5
OP_RELU: constant(uint256) = 6
OP_RELU_GRAD: constant(uint256) = 7
OP_SOFTMAX_XENT: constant(uint256) = 8
OP_SOFTMAX_XENT_GRAD: constant(uint256) = 9
OP_SUM_ROWS: constant(uint256) = 10
OP_SGD: constant(uint256) = 11

# Arbitration phases and end reasons this contract names
PHASE_PROVE: constant(uint256) = 5
PHASE_DEMAND: constant(uint256) = 6
END_LINK: constant(uint256) = 2
END_DATA: constant(uint256) = 3
END_ELEMENT: constant(uint256) = 4


interface IGame:
    def context(dispute_id: uint256, caller: address, phase: uint256) -> structs.Context: view
    def record_demand(dispute_id: uint256, caller: address, node: uint256, start: uint256, count: uint256, numel: uint256, itemsize: uint256, n_nodes: uint256): payable
    def record_post(dispute_id: uint256, caller: address, tensor_root: bytes32, values: DynArray[uint256, MAX_READ]): nonpayable
    def conclude(dispute_id: uint256, caller: address, reason: uint256): nonpayable

interface IReader:
    def open_elements(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, start: uint256, stride: uint256, count: uint256) -> DynArray[uint256, MAX_READ]: pure
    def bytes_equal(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, offset: uint256, data: Bytes[MAX_ROW_BYTES]) -> bool: view


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
# ║ DATA AVAILABILITY                                             ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@payable
def demand_elements(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    node: structs.GraphOpening,
    start: uint256,
    count: uint256,
):
    """
    @notice Move 5' (challenger): the trace cannot be fetched. The solver must
            post elements [start, start + count) of the output of the node
            `node` opens (proven against the graph root), within its clock.
            The value sent pays the game's demand fee (`Arbitration.demand_fee`).
    """
    c: structs.Context = staticcall IGame(game).context(dispute_id, msg.sender, PHASE_PROVE)
    graph_root: bytes32 = openings._named(c.spec_hash, c.trace_root, trace_root, commitments).graph_root
    assert len(node.nodes) == 1, "arbitration: one node per demand"
    openings._check_graph(graph_root, node)
    numel: uint256 = openings._numel(node.nodes[0].shape)
    extcall IGame(game).record_demand(
        dispute_id, msg.sender, node.nodes[0].id, start, count, numel, self._itemsize(node.nodes[0].op), node.n_nodes,
        value=msg.value
    )


@external
def post_elements(
    game: address,
    dispute_id: uint256,
    node: uint256,
    start: uint256,
    count: uint256,
    tensor_root: bytes32,
    trace_siblings: DynArray[bytes32, MAX_NODE_SIBLINGS],
    opening: structs.TensorOpening,
):
    """
    @notice Answer to a demand (solver; names the demand): the node's output
            root proven in the committed trace and the leaves holding the
            demanded elements, proven in that root. The game emits the values.
    """
    c: structs.Context = staticcall IGame(game).context(dispute_id, msg.sender, PHASE_DEMAND)
    assert node == c.demand_node and start == c.demand_start and count == c.demand_count, "arbitration: wrong demand"
    assert merkle._verify(c.trace_root, [node], [tensor_root], trace_siblings, c.n_nodes), "arbitration: trace opening invalid"
    values: DynArray[uint256, MAX_READ] = staticcall IReader(reader).open_elements(
        tensor_root, c.demand_numel, c.demand_itemsize, opening, start, 1, count
    )
    extcall IGame(game).record_post(dispute_id, msg.sender, tensor_root, values)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ FINAL PROOFS                                                  ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def prove_link_mismatch(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    after: bool,
    nodes: structs.GraphOpening,
    trace: structs.TraceOpening,
):
    """
    @notice Move 5a: the parameter block of the trace is not the state it must be.
            after = False: nodes 0..P-1 are `param` nodes with attrs [i] and node
            P is not; the Merkle root of their trace roots must be the state
            root before the step. after = True: the last P nodes are `sgd`
            nodes updating param i (inputs[0] = i) and the node before them is
            not; their root must be the state root after the step. `nodes`
            opens the P + 1 descriptors, `trace` the P block roots.
    """
    c: structs.Context = staticcall IGame(game).context(dispute_id, msg.sender, PHASE_PROVE)
    graph_root: bytes32 = openings._named(c.spec_hash, c.trace_root, trace_root, commitments).graph_root
    openings._check_graph(graph_root, nodes)
    count: uint256 = len(nodes.nodes)
    assert count >= 2, "arbitration: not the parameter block"
    params: uint256 = count - 1
    ids: DynArray[uint256, MAX_OPEN_NODES] = []
    expected: bytes32 = c.state_before
    if not after:
        for i: uint256 in range(MAX_PARAMS):
            if i == params:
                break
            assert nodes.nodes[i].op == OP_PARAM and nodes.nodes[i].id == i and len(nodes.nodes[i].attrs) == 1 and nodes.nodes[i].attrs[0] == i, "arbitration: not the parameter block"
            ids.append(i)
        assert nodes.nodes[params].id == params and nodes.nodes[params].op != OP_PARAM, "arbitration: not the parameter block"
    else:
        first: uint256 = nodes.nodes[0].id
        assert first + params + 1 == nodes.n_nodes and nodes.nodes[0].op != OP_SGD, "arbitration: not the update block"
        for i: uint256 in range(MAX_PARAMS):
            if i == params:
                break
            assert nodes.nodes[i + 1].op == OP_SGD and len(nodes.nodes[i + 1].inputs) == 2 and nodes.nodes[i + 1].inputs[0] == i, "arbitration: not the update block"
            ids.append(first + 1 + i)
        expected = c.state_after
    assert len(trace.roots) == params and merkle._verify(trace_root, ids, trace.roots, trace.siblings, nodes.n_nodes), "arbitration: trace opening invalid"
    leaves: DynArray[bytes32, merkle.MAX_ROOT_LEAVES] = []
    for root: bytes32 in trace.roots:
        leaves.append(root)
    assert merkle._merkle_root(leaves) != expected, "arbitration: links hold"
    extcall IGame(game).conclude(dispute_id, msg.sender, END_LINK)


@external
def prove_data_mismatch(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    nodes: structs.GraphOpening,
    trace: structs.TraceOpening,
    opening: structs.TensorOpening,
    row: uint256,
    data: structs.DataRow,
):
    """
    @notice Move 5b: row `row` of the `data_x` (or `data_y`) node's output is
            not dataset row idx = uint256(keccak256(abi.encode(seed, step,
            row))) % dataset_rows, which `data` proves against the dataset root.
    """
    c: structs.Context = staticcall IGame(game).context(dispute_id, msg.sender, PHASE_PROVE)
    t: structs.Commitments = openings._named(c.spec_hash, c.trace_root, trace_root, commitments)
    openings._check_graph(t.graph_root, nodes)
    openings._check_trace(trace_root, nodes, trace)
    assert len(nodes.nodes) == 1, "arbitration: not a data node"
    op: uint256 = nodes.nodes[0].op
    shape: DynArray[uint256, 2] = nodes.nodes[0].shape
    assert (op == OP_DATA_X and len(shape) == 2) or (op == OP_DATA_Y and len(shape) == 1), "arbitration: not a data node"
    assert row < shape[0], "arbitration: no such row"

    index: uint256 = convert(keccak256(abi_encode(t.seed, c.step, row)), uint256) % t.dataset_rows
    assert data.label < 2**63, "arbitration: dataset row invalid"
    label: Bytes[8] = slice(convert(self._swap(data.label, 8) << 192, bytes32), 0, 8)
    ok: bool = False
    inner: bytes32 = empty(bytes32)
    ok, inner = merkle._multi_root([index], [keccak256(concat(data.x_row, label))], data.siblings, t.dataset_rows)
    assert ok and merkle._sized_root(inner, t.dataset_rows) == t.dataset_root, "arbitration: dataset row invalid"

    same: bool = True
    if op == OP_DATA_Y:
        same = (staticcall IReader(reader).open_elements(trace.roots[0], shape[0], 8, opening, row, 1, 1))[0] == data.label
    else:
        width: uint256 = shape[1] * 4
        assert len(data.x_row) == width, "arbitration: row width mismatch"
        same = staticcall IReader(reader).bytes_equal(trace.roots[0], shape[0] * shape[1], 4, opening, row * width, data.x_row)
    assert not same, "arbitration: data row matches"
    extcall IGame(game).conclude(dispute_id, msg.sender, END_DATA)


@external
def prove_element(
    game: address,
    dispute_id: uint256,
    trace_root: bytes32,
    commitments: structs.Commitments,
    node: uint256,
    index: uint256,
    nodes: structs.GraphOpening,
    trace: structs.TraceOpening,
    output: structs.TensorOpening,
    first: structs.TensorOpening,
    second: structs.TensorOpening,
):
    """
    @notice Move 5c: element `index` (flat, C order) of node `node`'s output is
            inconsistent with the node's committed inputs: the judge rejects
            it. `nodes` / `trace` open the node and its inputs (increasing
            ids); `output` opens the element; `first` / `second` open what the
            judge needs of the first / second input (docs/judge.md §4): a row
            or a column of a matmul operand, a column of a sum_rows input, the
            logit row and the label of a softmax, or single elements of an
            elementwise op (`second` is ignored for one-input ops).
    """
    c: structs.Context = staticcall IGame(game).context(dispute_id, msg.sender, PHASE_PROVE)
    graph_root: bytes32 = openings._named(c.spec_hash, c.trace_root, trace_root, commitments).graph_root
    openings._check_graph(graph_root, nodes)
    openings._check_trace(trace_root, nodes, trace)
    at: uint256 = openings._find(nodes, node)
    op: uint256 = nodes.nodes[at].op
    assert op >= OP_MATMUL and op <= OP_SGD and len(nodes.nodes[at].inputs) >= 1, "arbitration: node has no one-step check"
    shape: DynArray[uint256, 2] = nodes.nodes[at].shape
    attrs: DynArray[uint256, 4] = nodes.nodes[at].attrs
    numel: uint256 = openings._numel(shape)
    assert index < numel, "arbitration: no such element"
    claimed: uint32 = convert((staticcall IReader(reader).open_elements(trace.roots[at], numel, 4, output, index, 1, 1))[0], uint32)

    a_at: uint256 = openings._find(nodes, nodes.nodes[at].inputs[0])
    a_shape: DynArray[uint256, 2] = nodes.nodes[a_at].shape
    b_at: uint256 = a_at
    b_shape: DynArray[uint256, 2] = a_shape
    if len(nodes.nodes[at].inputs) == 2:
        b_at = openings._find(nodes, nodes.nodes[at].inputs[1])
        b_shape = nodes.nodes[b_at].shape
    cols: uint256 = shape[len(shape) - 1]

    # which elements of each input the judge needs: (start, stride, count)
    a_start: uint256 = index
    a_stride: uint256 = 1
    a_count: uint256 = 1
    b_start: uint256 = index
    b_stride: uint256 = 1
    b_count: uint256 = 0
    aux: DynArray[uint256, MAX_AUX] = []
    if op == OP_MATMUL:
        assert len(attrs) == 4 and len(a_shape) == 2 and len(b_shape) == 2 and attrs[3] > attrs[2], "arbitration: bad descriptor"
        k0: uint256 = attrs[2]
        a_count = attrs[3] - k0
        b_count = a_count
        i: uint256 = index // cols
        j: uint256 = index % cols
        if attrs[0] == 0:
            a_start = i * a_shape[1] + k0
        else:
            a_start = k0 * a_shape[1] + i
            a_stride = a_shape[1]
        if attrs[1] == 0:
            b_start = k0 * b_shape[1] + j
            b_stride = b_shape[1]
        else:
            b_start = j * b_shape[1] + k0
    elif op == OP_ADD or op == OP_RELU_GRAD or op == OP_SGD:
        b_count = 1
        if op == OP_SGD:
            assert len(attrs) == 1, "arbitration: bad descriptor"
            aux.append(attrs[0])
    elif op == OP_ADD_BIAS:
        b_start = index % cols
        b_count = 1
    elif op == OP_SOFTMAX_XENT or op == OP_SOFTMAX_XENT_GRAD:
        assert len(a_shape) == 2, "arbitration: bad descriptor"
        i: uint256 = index
        if op == OP_SOFTMAX_XENT_GRAD:
            i = index // cols
        a_start = i * a_shape[1]
        a_count = a_shape[1]
        b_start = i
        b_count = 1
    elif op == OP_SUM_ROWS:
        assert len(attrs) == 2 and len(a_shape) == 2 and attrs[1] > attrs[0], "arbitration: bad descriptor"
        a_start = attrs[0] * a_shape[1] + index
        a_stride = a_shape[1]
        a_count = attrs[1] - attrs[0]
    assert a_count <= MAX_CLASSES and b_count <= MAX_REDUCTION, "arbitration: bad descriptor"

    a: DynArray[uint32, MAX_CLASSES] = []
    for v: uint256 in staticcall IReader(reader).open_elements(
        trace.roots[a_at], openings._numel(a_shape), 4, first, a_start, a_stride, a_count
    ):
        a.append(convert(v, uint32))
    b: DynArray[uint32, MAX_REDUCTION] = []
    if b_count > 0:
        b_values: DynArray[uint256, MAX_READ] = staticcall IReader(reader).open_elements(
            trace.roots[b_at], openings._numel(b_shape), self._itemsize(nodes.nodes[b_at].op), second, b_start, b_stride, b_count
        )
        if op == OP_SOFTMAX_XENT or op == OP_SOFTMAX_XENT_GRAD:
            # the label of row i, then (gradient) the column and the batch size
            aux.append(b_values[0])
            if op == OP_SOFTMAX_XENT_GRAD:
                aux.append(index % cols)
                aux.append(shape[0])
        else:
            for v: uint256 in b_values:
                b.append(convert(v, uint32))

    consistent: bool = staticcall IJudge(judge).check(op, a, b, aux, claimed)
    assert not consistent, "arbitration: element is consistent"
    extcall IGame(game).conclude(dispute_id, msg.sender, END_ELEMENT)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _itemsize(op: uint256) -> uint256:
    # labels are int64, everything else float32
    if op == OP_DATA_Y:
        return 8
    return 4


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
