# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title openings
@notice Stateless checks of graph and trace openings shared by the checkers
        (docs/arbitration.md §4): a final proof names the trace root it answers
        and brings the task commitments; descriptors are proven against the
        graph root, their output roots against the trace root.
"""

from arbitration import merkle
from arbitration import structs

MAX_OPEN_NODES: constant(uint256) = structs.MAX_OPEN_NODES
# largest dimension accepted from a descriptor
MAX_DIM: constant(uint256) = 2**32


@internal
@pure
def _named(spec_hash: bytes32, claimed_root: bytes32, trace_root: bytes32, commitments: structs.Commitments) -> structs.Commitments:
    """
    @notice The move names the trace root it answers and brings the task
            commitments, which must hash to the task's spec_hash.
    """
    assert trace_root == claimed_root, "arbitration: wrong trace root"
    assert keccak256(abi_encode(commitments)) == spec_hash, "arbitration: commitments do not match the task"
    return commitments


@internal
@pure
def _check_graph(graph_root: bytes32, g: structs.GraphOpening):
    """
    @notice The descriptors are nodes of the committed graph (ids strictly increasing).
    """
    ids: DynArray[uint256, MAX_OPEN_NODES] = []
    hashes: DynArray[bytes32, MAX_OPEN_NODES] = []
    for desc: structs.Descriptor in g.nodes:
        ids.append(desc.id)
        hashes.append(keccak256(abi_encode(desc.id, desc.op, desc.inputs, desc.shape, desc.attrs)))
    ok: bool = False
    inner: bytes32 = empty(bytes32)
    ok, inner = merkle._multi_root(ids, hashes, g.siblings, g.n_nodes)
    assert ok and merkle._sized_root(inner, g.n_nodes) == graph_root, "arbitration: graph opening invalid"


@internal
@pure
def _check_trace(trace_root: bytes32, g: structs.GraphOpening, t: structs.TraceOpening):
    """
    @notice `t.roots[i]` is the trace leaf (output tensor root) of node `g.nodes[i]`.
    """
    ids: DynArray[uint256, MAX_OPEN_NODES] = []
    for desc: structs.Descriptor in g.nodes:
        ids.append(desc.id)
    assert len(t.roots) == len(ids) and merkle._verify(trace_root, ids, t.roots, t.siblings, g.n_nodes), "arbitration: trace opening invalid"


@internal
@pure
def _find(g: structs.GraphOpening, node_id: uint256) -> uint256:
    for i: uint256 in range(MAX_OPEN_NODES):
        if i == len(g.nodes):
            break
        if g.nodes[i].id == node_id:
            return i
    raise "arbitration: node not opened"


@internal
@pure
def _numel(shape: DynArray[uint256, 2]) -> uint256:
    assert len(shape) >= 1, "arbitration: bad descriptor"
    numel: uint256 = 1
    for size: uint256 in shape:
        assert size > 0 and size <= MAX_DIM, "arbitration: bad descriptor"
        numel *= size
    return numel
