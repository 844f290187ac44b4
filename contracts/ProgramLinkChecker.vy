# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title ProgramLinkChecker
@notice The final proofs of the dispute game that tie a training program's
        step trace to what the task and the revealed states commit
        (docs/arbitration.md §4.1, §4.2, §11); the ProgramChecker proves one
        element wrong. Stateless: it reads the claims of a live dispute of
        `game` and reports the verified result to that game with the caller;
        the game accepts these reports only from the link checker it was
        built with.

          prove_output_link   the nodes the program outputs (the next state) do
                              not hash to the state after the step
          prove_leaf_link     a leaf is not what the task commits: a `state`
                              leaf is not its tensor of the checkpoint before
                              the step, a `const` leaf not the tensor its attrs
                              commit, the `hyper` leaf not row `step` of the
                              hyper table, the `rng` leaf not step_key(seed,
                              step), a `data_x` / `data_y` row not the dataset
                              row the seed derives for the step; for a group
                              participant's step, a `recv` leaf or a message
                              it sends is not the one its group's mail holds
"""

from arbitration import merkle
from arbitration import program_openings
from arbitration import structs
from judge import program


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

MAX_STATE: constant(uint256) = structs.MAX_STATE
MAX_OPEN_NODES: constant(uint256) = structs.MAX_OPEN_NODES
# trace openings of one output link (each at most 65 roots and 128 siblings)
MAX_LINK_OPENINGS: constant(uint256) = 16
MAX_PROOF_SIBLINGS: constant(uint256) = structs.MAX_PROOF_SIBLINGS
# largest dimension accepted from a descriptor
MAX_DIM: constant(uint256) = 2**32

# program leaf opcodes (offchain/ml/ops.py)
OP_STATE: constant(uint256) = 0
OP_DATA_X: constant(uint256) = 1
OP_DATA_Y: constant(uint256) = 2
OP_CONST: constant(uint256) = 12
OP_HYPER: constant(uint256) = 13
OP_RNG: constant(uint256) = 14
OP_RECV: constant(uint256) = 83
# step_key(seed, step) = uint32(keccak256(abi.encode(seed, step, DROPOUT_DOMAIN)))
DROPOUT_DOMAIN: constant(uint256) = 2

# Arbitration phases and end reasons this contract names
PHASE_PROVE: constant(uint256) = 5
END_LINK: constant(uint256) = 2
END_DATA: constant(uint256) = 3


interface IGame:
    def context(dispute_id: uint256, caller: address, phase: uint256) -> structs.Context: view
    def conclude(dispute_id: uint256, caller: address, reason: uint256): nonpayable

interface IReader:
    def range_root(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, start: uint256, count: uint256) -> bytes32: pure
    def row_differs(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, row: uint256, index: uint256, dataset_root: bytes32, dataset_rows: uint256, data: structs.DataRow) -> bool: pure


# the tensor openings (contracts/TensorReader.vy)
reader: public(immutable(address))


@deploy
def __init__(reader_: address):
    """
    @param reader_ The TensorReader.
    """
    assert reader_ != empty(address), "arbitration: zero address"
    reader = reader_


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
    mail: structs.MailCommit,
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
            which `data` proves against the dataset root;
            of a group participant's step (docs/group-tasks.md §4.1; `mail`
            hashes to the program's links): `recv` with attrs [i]: its root is
            not `leaf`, the message at position inbox[i] of the step, and the
            node sends[row]: its root is not `leaf`, the message at position
            offset + row; `leaf` is proven at index step * per_step + position
            of the dispute's mail root (the group's) over steps * per_step
            leaves. Outside a group's dispute no mail holds any message.
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
        position: uint256 = 0
        if d.op == OP_RECV:
            assert len(d.attrs) == 1 and d.attrs[0] < len(mail.inbox), "arbitration: bad descriptor"
            position = mail.inbox[d.attrs[0]]
        else:
            assert row < len(mail.sends) and mail.sends[row] == d.id, "arbitration: not a linked leaf"
            position = mail.offset + row
        assert prog.links != empty(bytes32) and keccak256(
            abi_encode(mail.sends, mail.inbox, mail.offset, mail.per_step)
        ) == prog.links, "arbitration: mail does not match the program"
        assert position < mail.per_step, "arbitration: no such message"
        if c.mail_root == empty(bytes32):  # not a group's dispute: no message was committed
            extcall IGame(game).conclude(dispute_id, msg.sender, END_LINK)
            return
        index: uint256 = c.step * mail.per_step + position
        assert merkle._verify(c.mail_root, [index], [leaf], siblings, commitments.steps * mail.per_step), "arbitration: mail opening invalid"
        expected = leaf
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
    program_openings._check_task(c, trace_root, commitments, prog, nodes)
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
