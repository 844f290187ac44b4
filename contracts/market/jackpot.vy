# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title jackpot
@notice The pool that pays for catching forced errors. It is filled by the
        task tax and by the pool's share of every slash; each payout is a
        bounded fraction of the pool and never above a fixed cap.
"""

from . import ledger

uses: ledger


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

PPM: constant(uint256) = 1_000_000


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EVENTS                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

event JackpotFunded:
    amount: uint256
    pool: uint256

event JackpotPaid:
    winner: indexed(address)
    amount: uint256
    pool: uint256


# ╔═══════════════════════════════════════════════════════════════╗
# ║ STORAGE                                                       ║
# ╚═══════════════════════════════════════════════════════════════╝

# wei in the pool
pool: public(uint256)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
def _fund(amount: uint256):
    if amount == 0:
        return
    self.pool += amount
    log JackpotFunded(amount=amount, pool=self.pool)


@internal
def _pay(winner: address, share_ppm: uint256, cap: uint256) -> uint256:
    """
    @notice Credit `winner` with `share_ppm` of the pool, at most `cap` wei.
    @return The amount paid.
    """
    amount: uint256 = min(self.pool * share_ppm // PPM, cap)
    if amount == 0:
        return 0
    self.pool -= amount
    ledger._credit(winner, amount)
    log JackpotPaid(winner=winner, amount=amount, pool=self.pool)
    return amount
