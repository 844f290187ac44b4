# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title stakes
@notice Bonded stake per account. Part of a stake can be locked to back a task
        or a dispute; only the free part can be unbonded, and unbonded stake
        waits `unbond_delay` seconds before it becomes a withdrawable credit.
        A locked stake leaves only through `_slash` or `_unlock`.
        The verifier set holds only accounts with at least the current
        verifier bond at stake, so a place in it costs a full bond.
"""

from . import ledger
from . import terms

uses: ledger
uses: terms


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

ROLE_SOLVER: constant(uint256) = 1
ROLE_VERIFIER: constant(uint256) = 2
ROLE_WHISTLEBLOWER: constant(uint256) = 4
ALL_ROLES: constant(uint256) = 7

MAX_VERIFIERS: constant(uint256) = 1_024
MAX_UNBOND_DELAY: constant(uint256) = 365 * 86_400


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EVENTS                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

event Deposited:
    account: indexed(address)
    amount: uint256
    roles: uint256

event UnbondRequested:
    account: indexed(address)
    amount: uint256
    ready_at: uint256

event StakeWithdrawn:
    account: indexed(address)
    amount: uint256

event StakeLocked:
    account: indexed(address)
    amount: uint256

event StakeUnlocked:
    account: indexed(address)
    amount: uint256

event StakeSlashed:
    account: indexed(address)
    amount: uint256


# ╔═══════════════════════════════════════════════════════════════╗
# ║ STORAGE                                                       ║
# ╚═══════════════════════════════════════════════════════════════╝

struct Stake:
    bonded: uint256     # wei at stake, locked part included
    locked: uint256     # part of `bonded` backing tasks or disputes
    unbonding: uint256  # wei leaving, no longer at stake
    ready_at: uint256   # when `unbonding` may be withdrawn
    roles: uint256      # ROLE_* bit flags

# stake of each account
accounts: public(HashMap[address, Stake])
# bonded + unbonding over all accounts
total_staked: public(uint256)
# seconds between an unbond request and its withdrawal
unbond_delay: public(uint256)
# accounts that may be drawn to verify a proof
verifiers: public(DynArray[address, MAX_VERIFIERS])
# position + 1 of each account in `verifiers`; 0 when absent
_verifier_slot: HashMap[address, uint256]


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTRUCTOR                                                   ║
# ╚═══════════════════════════════════════════════════════════════╝

@deploy
def __init__(unbond_delay: uint256):
    assert unbond_delay <= MAX_UNBOND_DELAY, "stakes: unbond delay too long"
    self.unbond_delay = unbond_delay


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EXTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@payable
def deposit(roles: uint256):
    """
    @notice Add `msg.value` to the caller's stake and grant it `roles`. A
            verifier joins the verifier set once its stake reaches the
            verifier bond.
    """
    assert msg.value > 0, "stakes: zero deposit"
    assert roles & ALL_ROLES == roles, "stakes: unknown role"
    stake: Stake = self.accounts[msg.sender]
    stake.bonded += msg.value
    stake.roles |= roles
    self.accounts[msg.sender] = stake
    self.total_staked += msg.value
    if stake.roles & ROLE_VERIFIER != 0:
        minimum: uint256 = self._verifier_minimum()
        if roles & ROLE_VERIFIER != 0:
            assert stake.bonded >= minimum, "stakes: verifier stake below the verifier bond"
        if stake.bonded >= minimum and self._verifier_slot[msg.sender] == 0:
            assert len(self.verifiers) < MAX_VERIFIERS, "stakes: verifier set full"
            self.verifiers.append(msg.sender)
            self._verifier_slot[msg.sender] = len(self.verifiers)
    log Deposited(account=msg.sender, amount=msg.value, roles=stake.roles)


@external
def unbond(amount: uint256):
    """
    @notice Start withdrawing `amount` of the caller's free stake. Unbonding
            stake can no longer back work; a verifier left with less than the
            verifier bond leaves the verifier set.
    """
    stake: Stake = self.accounts[msg.sender]
    assert amount > 0, "stakes: zero amount"
    assert amount <= stake.bonded - stake.locked, "stakes: amount exceeds free stake"
    stake.bonded -= amount
    stake.unbonding += amount
    stake.ready_at = block.timestamp + self.unbond_delay
    self.accounts[msg.sender] = stake
    self._evict_if_below(msg.sender)
    log UnbondRequested(account=msg.sender, amount=amount, ready_at=stake.ready_at)


@external
def withdraw_stake():
    """
    @notice Turn the caller's unbonded stake into a withdrawable credit once
            the delay has passed.
    """
    stake: Stake = self.accounts[msg.sender]
    assert stake.unbonding > 0, "stakes: nothing unbonding"
    assert block.timestamp >= stake.ready_at, "stakes: still unbonding"
    amount: uint256 = stake.unbonding
    self.accounts[msg.sender].unbonding = 0
    self.total_staked -= amount
    ledger._credit(msg.sender, amount)
    log StakeWithdrawn(account=msg.sender, amount=amount)


@external
@view
def verifier_count() -> uint256:
    return len(self.verifiers)


@external
@view
def free_stake(account: address) -> uint256:
    return self._free(account)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@view
def _free(account: address) -> uint256:
    return self.accounts[account].bonded - self.accounts[account].locked


@internal
@view
def _has_role(account: address, role: uint256) -> bool:
    return self.accounts[account].roles & role != 0


@internal
def _lock(account: address, amount: uint256):
    assert self._free(account) >= amount, "stakes: insufficient free stake"
    self.accounts[account].locked += amount
    log StakeLocked(account=account, amount=amount)


@internal
def _unlock(account: address, amount: uint256):
    self.accounts[account].locked -= amount
    log StakeUnlocked(account=account, amount=amount)


@internal
def _slash(account: address, amount: uint256) -> uint256:
    """
    @notice Remove `amount` of `account`'s locked stake from the stake books.
            The caller decides where the wei go.
    """
    self.accounts[account].locked -= amount
    self.accounts[account].bonded -= amount
    self.total_staked -= amount
    self._evict_if_below(account)
    log StakeSlashed(account=account, amount=amount)
    return amount


@internal
@view
def _verifier_minimum() -> uint256:
    return terms.published[terms.current_terms].verifier_bond


@internal
def _evict_if_below(account: address):
    if self.accounts[account].bonded < self._verifier_minimum():
        self._leave_verifier_set(account)


@internal
def _leave_verifier_set(account: address):
    slot: uint256 = self._verifier_slot[account]
    if slot == 0:
        return
    last: address = self.verifiers.pop()
    if last != account:
        self.verifiers[slot - 1] = last
        self._verifier_slot[last] = slot
    self._verifier_slot[account] = 0
