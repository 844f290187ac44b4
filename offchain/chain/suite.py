"""What the deployed suite is made of: contract sources, default terms, roles.

Numbers that the contracts enforce are read from the contracts; only the
*initial* terms of a fresh deployment live here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntFlag
from pathlib import Path

import rlp
from eth_utils import keccak, to_canonical_address, to_checksum_address

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
ETHER = 10**18


def format_ether(wei: int) -> str:
    """Wei as ether, exact and without trailing zeros: ``1.5 ETH``."""
    whole, frac = divmod(wei, ETHER)
    return f"{whole}.{frac:018d}".rstrip("0").rstrip(".") + " ETH"


class Role(IntFlag):
    """Mirror of the ROLE_* flags of `contracts/market/stakes.vy`."""

    SOLVER = 1
    VERIFIER = 2
    WHISTLEBLOWER = 4


class TaskState(IntFlag):
    """Mirror of `Market.TaskState` (Vyper flags are powers of two)."""

    NONE = 0
    OPEN = 1
    CLAIMED = 2
    SUBMITTED = 4
    ACCEPTED = 8
    DISPUTED = 16
    FINALISED = 32
    CANCELLED = 64
    REFUNDED = 128


TERMINAL_STATES = TaskState.FINALISED | TaskState.CANCELLED | TaskState.REFUNDED


@dataclass(frozen=True)
class Terms:
    """Field order matches `terms.Terms` in `contracts/market/terms.vy`."""

    tax_ppm: int = 20_000
    verifier_fee_ppm: int = 50_000
    forced_error_ppm: int = 10_000
    verifier_bond: int = ETHER
    challenge_bond: int = ETHER
    silence_slash: int = ETHER // 10
    winner_share_ppm: int = 500_000
    payout_ppm: int = 100_000
    payout_cap: int = 4 * ETHER // 10
    verify_window: int = 600
    whistle_window: int = 600
    reveal_window: int = 600
    min_payment: int = ETHER // 5
    min_solver_stake: int = ETHER

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(asdict(self).values())

    def replace(self, **changes: int) -> Terms:
        return Terms(**{**asdict(self), **changes})


DEFAULT_UNBOND_DELAY = 3_600
# the shortest window terms may ever set on a deployment (a local test chain may go lower)
DEFAULT_MIN_WINDOW = 60


def create_address(sender: str, nonce: int) -> str:
    """Address of the contract `sender` creates with its `nonce`-th transaction."""
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:])
