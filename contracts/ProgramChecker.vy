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

        Its proofs (each names the trace root it answers and opens the
        program's descriptors in its committed root):
          demand_elements     the solver must post elements of one node's output
          prove_element       one output element of one node is rejected by the
                              program judge given the input elements the index
                              map names (ProgramIndex, ProgramJudge)
        The links of the trace to the task, the states and a group's mail are
        the ProgramLinkChecker's.
@dev    A task's graph root is keccak256(abi.encode(program_root, hyper_root))
        (structs.ProgramCommit, offchain/ml/task.py, offchain/ml/program.py).
"""

from arbitration import program_openings
from arbitration import structs
from judge import program


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

MAX_INPUTS: constant(uint256) = structs.MAX_PROGRAM_INPUTS
MAX_READ: constant(uint256) = program.MAX_READ
MAX_LISTS: constant(uint256) = program.MAX_LISTS

# leaf opcodes without a one-step check (offchain/ml/ops.py)
OP_CONST: constant(uint256) = 12
OP_HYPER: constant(uint256) = 13
OP_RNG: constant(uint256) = 14

# Arbitration phases and end reasons this contract names
PHASE_PROVE: constant(uint256) = 5
END_ELEMENT: constant(uint256) = 4


interface IGame:
    def context(dispute_id: uint256, caller: address, phase: uint256) -> structs.Context: view
    def record_demand(dispute_id: uint256, caller: address, node: uint256, start: uint256, count: uint256, numel: uint256, itemsize: uint256, n_nodes: uint256): payable
    def conclude(dispute_id: uint256, caller: address, reason: uint256): nonpayable

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
