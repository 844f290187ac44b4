# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title ProofChecker
@notice The data-availability answer of the dispute game (docs/arbitration.md
        §4): a solver posts the elements a challenger demanded (through the
        ProgramChecker's `demand_elements`), proven against the trace root a
        live dispute of `game` holds, and the checker reports the verified
        values to that game with the caller. It holds no state: a game accepts
        reports only from the checker it was built with, and the checker
        reports only to the game it read the claims from, so a fake game can
        learn nothing and change nothing.
@dev    Large openings stay in calldata; the stateless TensorReader
        (contracts/TensorReader.vy) verifies the tensor opening in a static
        call and reads the elements from it in a fresh memory frame.
"""

from arbitration import merkle
from arbitration import structs


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

MAX_NODE_SIBLINGS: constant(uint256) = structs.MAX_NODE_SIBLINGS
# elements one demand names at most (Arbitration.MAX_DEMAND)
MAX_READ: constant(uint256) = 512

# the Arbitration phase this contract answers in
PHASE_DEMAND: constant(uint256) = 6


interface IGame:
    def context(dispute_id: uint256, caller: address, phase: uint256) -> structs.Context: view
    def record_post(dispute_id: uint256, caller: address, tensor_root: bytes32, values: DynArray[uint256, MAX_READ]): nonpayable

interface IReader:
    def open_elements(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening, start: uint256, stride: uint256, count: uint256) -> DynArray[uint256, MAX_READ]: pure


# the tensor openings (contracts/TensorReader.vy)
reader: public(immutable(address))


@deploy
def __init__(reader_: address):
    assert reader_ != empty(address), "arbitration: zero address"
    reader = reader_


# ╔═══════════════════════════════════════════════════════════════╗
# ║ DATA AVAILABILITY                                             ║
# ╚═══════════════════════════════════════════════════════════════╝

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
