# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title program_openings
@notice Stateless checks of a training program's openings shared by the
        checkers that prove program steps (ProgramChecker, ProgramLinkChecker,
        ProgramReductionChecker;
        docs/arbitration.md §11): the program commitment against the task's
        graph root, descriptors against its nodes root, output roots against
        the trace root, and elements read from those roots as the program
        judge takes them.
"""

from arbitration import merkle
from arbitration import openings
from arbitration import structs
from judge import program

MAX_INPUTS: constant(uint256) = structs.MAX_PROGRAM_INPUTS
MAX_RANK: constant(uint256) = structs.MAX_PROGRAM_RANK
MAX_OPEN_NODES: constant(uint256) = structs.MAX_OPEN_NODES
MAX_READ: constant(uint256) = program.MAX_READ
# largest dimension accepted from a descriptor
MAX_DIM: constant(uint256) = 2**32


interface IReader:
    def open_indices(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, indices: DynArray[uint256, MAX_READ]) -> DynArray[uint256, MAX_READ]: pure


@internal
@pure
def _check_task(
    c: structs.Context,
    trace_root: bytes32,
    commitments: structs.Commitments,
    prog: structs.ProgramCommit,
    nodes: structs.ProgramOpening,
):
    """
    @notice A move over the live dispute `c` names its trace root and brings
            the task's commitments, the program's commitment in them and the
            descriptors of `nodes` (strictly increasing ids) in its nodes_root.
    """
    graph_root: bytes32 = openings._named(c.spec_hash, c.trace_root, trace_root, commitments).graph_root
    self._check_program(graph_root, prog, nodes)


@internal
@pure
def _check_program(graph_root: bytes32, prog: structs.ProgramCommit, nodes: structs.ProgramOpening):
    """
    @notice `prog` is the program the task's graph root commits, and the
            descriptors of `nodes` (strictly increasing ids) are in its nodes_root.
    """
    program_root: bytes32 = keccak256(abi_encode(prog.nodes_root, prog.outputs_hash))
    if prog.links != empty(bytes32):
        program_root = keccak256(abi_encode(prog.nodes_root, prog.outputs_hash, prog.links))
    assert keccak256(abi_encode(program_root, prog.hyper_root)) == graph_root, "arbitration: program does not match the task"
    ids: DynArray[uint256, MAX_OPEN_NODES] = []
    hashes: DynArray[bytes32, MAX_OPEN_NODES] = []
    for d: structs.ProgramDescriptor in nodes.nodes:
        ids.append(d.id)
        hashes.append(keccak256(abi_encode(d.id, d.op, d.dtype, d.inputs, d.shape, d.attrs)))
    ok: bool = False
    inner: bytes32 = empty(bytes32)
    ok, inner = merkle._multi_root(ids, hashes, nodes.siblings, nodes.n_nodes)
    assert ok and merkle._sized_root(inner, nodes.n_nodes) == prog.nodes_root, "arbitration: graph opening invalid"


@internal
@pure
def _check_trace(trace_root: bytes32, nodes: structs.ProgramOpening, trace: structs.TraceOpening):
    """
    @notice `trace.roots[i]` is the trace leaf (output tensor root) of `nodes.nodes[i]`.
    """
    ids: DynArray[uint256, MAX_OPEN_NODES] = []
    for d: structs.ProgramDescriptor in nodes.nodes:
        ids.append(d.id)
    assert len(trace.roots) == len(ids) and merkle._verify(trace_root, ids, trace.roots, trace.siblings, nodes.n_nodes), "arbitration: trace opening invalid"


@internal
@pure
def _find(nodes: structs.ProgramOpening, node_id: uint256) -> uint256:
    for i: uint256 in range(MAX_INPUTS + 1):
        if i == len(nodes.nodes):
            break
        if nodes.nodes[i].id == node_id:
            return i
    raise "arbitration: node not opened"


@internal
@pure
def _inputs(nodes: structs.ProgramOpening, d: structs.ProgramDescriptor) -> (DynArray[program.Input, MAX_INPUTS], DynArray[uint256, MAX_INPUTS]):
    """
    @notice The dtypes and shapes of `d`'s inputs, in its input order, and where
            each is in `nodes`.
    """
    ins: DynArray[program.Input, MAX_INPUTS] = []
    where: DynArray[uint256, MAX_INPUTS] = []
    for i: uint256 in d.inputs:
        k: uint256 = self._find(nodes, i)
        where.append(k)
        ins.append(program.Input(dtype=nodes.nodes[k].dtype, shape=nodes.nodes[k].shape))
    return ins, where


@internal
@pure
def _numel(shape: DynArray[uint256, MAX_RANK]) -> uint256:
    numel: uint256 = 1
    for size: uint256 in shape:
        assert size > 0 and size <= MAX_DIM, "arbitration: bad descriptor"
        numel *= size
    return numel


@internal
@pure
def _itemsize(dtype: uint256) -> uint256:
    # float32 tensors are committed as 4-byte elements; int64 and bool (as int64 0/1) as 8
    if dtype == program.F32:
        return 4
    return 8


@internal
@pure
def _value(dtype: uint256, raw: uint256) -> int256:
    """
    @notice A committed element as the program judge takes it: float32 bits, or the signed int64.
    """
    if dtype == program.F32 or raw < 2**63:
        return convert(raw, int256)
    return convert(raw, int256) - 2**64


@internal
@view
def _element(reader: address, d: structs.ProgramDescriptor, root: bytes32, opening: structs.TensorOpening, index: uint256) -> int256:
    """
    @notice Element `index` of the output of `d` (root `root`).
    """
    return self._value(d.dtype, (staticcall IReader(reader).open_indices(
        root, self._numel(d.shape), self._itemsize(d.dtype), opening, [index]
    ))[0])


@internal
@view
def _read(
    reader: address,
    r: program.Read,
    where: DynArray[uint256, MAX_INPUTS],
    nodes: structs.ProgramOpening,
    trace: structs.TraceOpening,
    opening: structs.TensorOpening,
) -> DynArray[int256, MAX_READ]:
    """
    @notice The values of one read: input position `r.pos`'s elements `r.idx`, opened in its
            output root (`where[p]`: where input p is in `nodes`).
    """
    k: uint256 = where[r.pos]
    dtype: uint256 = nodes.nodes[k].dtype
    raw: DynArray[uint256, MAX_READ] = staticcall IReader(reader).open_indices(
        trace.roots[k], self._numel(nodes.nodes[k].shape), self._itemsize(dtype), opening, r.idx
    )
    values: DynArray[int256, MAX_READ] = []
    for v: uint256 in raw:
        values.append(self._value(dtype, v))
    return values
