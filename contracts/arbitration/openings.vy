# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title openings
@notice The claims a checker's proof names (docs/arbitration.md §4): the trace
        root it answers and the task commitments, bound to the spec hash.
"""

from arbitration import structs


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
