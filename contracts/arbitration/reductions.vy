# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title reductions
@notice The chunk proof shared by the checkers of the dissection inside a
        reduction (docs/arbitration.md §4.4): the named partial of the last
        post covers one chunk, and the judge's exact partial of that chunk's
        terms differs from it.
"""

from arbitration import merkle
from arbitration import structs

CHUNK: constant(uint256) = structs.CHUNK
MAX_PROOF_SIBLINGS: constant(uint256) = structs.MAX_PROOF_SIBLINGS
# Arbitration's end reason of a wrong chunk partial
END_CHUNK: constant(uint256) = 5


interface IGame:
    def conclude_reduction(dispute_id: uint256, caller: address, reason: uint256): nonpayable

interface IChunkJudge:
    def check_chunk(op: uint256, a: DynArray[uint32, CHUNK], b: DynArray[uint32, CHUNK], top: int256, claimed: uint32, x: int256, abs_sum: uint256, leaf_top: int256) -> bool: pure


@internal
@pure
def _chunk(r: structs.ReductionContext, index: uint256, partial: structs.Partial, proof: DynArray[bytes32, MAX_PROOF_SIBLINGS]) -> uint256:
    """
    @notice Partial `index` of the last post is in its root and covers one
            chunk: the chunk's first term.
    """
    assert index < r.points, "arbitration: no such partial"
    lo: uint256 = index * r.chunks // r.points
    assert (index + 1) * r.chunks // r.points == lo + 1, "arbitration: not a single chunk"
    assert merkle._verify(r.partials_root, [index], [keccak256(abi_encode(partial))], proof, r.points), "arbitration: partial not in the partials root"
    return (r.first + lo) * CHUNK


@internal
def _conclude_chunk(
    judge: address,
    game: address,
    dispute_id: uint256,
    r: structs.ReductionContext,
    op: uint256,
    a: DynArray[uint32, CHUNK],
    b: DynArray[uint32, CHUNK],
    partial: structs.Partial,
):
    """
    @notice The chunk's terms (products a_k b_k, or a_k with b empty; the judge's `op`) do not
            give `partial` at the reduction's scale: the caller wins.
    """
    self._conclude(game, dispute_id, staticcall IChunkJudge(judge).check_chunk(
        op, a, b, r.total.top, convert(r.claimed, uint32), partial.x, partial.abs_sum, partial.top
    ))


@internal
def _conclude(game: address, dispute_id: uint256, correct: bool):
    """
    @notice The named one-chunk partial is not the chunk's (`correct` false): the caller wins.
    """
    assert not correct, "arbitration: partial is correct"
    extcall IGame(game).conclude_reduction(dispute_id, msg.sender, END_CHUNK)
