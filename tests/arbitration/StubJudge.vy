# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title StubJudge
@notice TEST ONLY. Stands in for contracts/Judge.vy behind IJudge: its verdict is
        a function of the claim alone (claims with the top bit set are rejected),
        so game tests can exercise both outcomes without real numerics.
"""

@external
@pure
def check(
    op: uint256,
    a: DynArray[uint32, 256],
    b: DynArray[uint32, 64],
    aux: DynArray[uint256, 4],
    claimed: uint32,
) -> bool:
    return claimed < 2**31
