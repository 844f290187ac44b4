# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title ledger
@notice Pull payments: every wei the market owes anyone becomes a credit that
        its owner withdraws. Nothing is ever pushed, so a receiver that reverts
        only blocks itself.
"""

# ╔═══════════════════════════════════════════════════════════════╗
# ║ EVENTS                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

event Credited:
    account: indexed(address)
    amount: uint256

event Withdrawn:
    account: indexed(address)
    recipient: indexed(address)
    amount: uint256


# ╔═══════════════════════════════════════════════════════════════╗
# ║ STORAGE                                                       ║
# ╚═══════════════════════════════════════════════════════════════╝

# wei each account may withdraw
credits: public(HashMap[address, uint256])
# sum of all credits
total_credits: public(uint256)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EXTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def withdraw(recipient: address = msg.sender):
    """
    @notice Send all of the caller's credit to `recipient`.
    @dev Checks-effects-interactions: the credit is zeroed before the call,
         and a failing call reverts the whole transaction, so nothing is lost.
    """
    amount: uint256 = self.credits[msg.sender]
    assert amount > 0, "ledger: nothing to withdraw"
    assert recipient != empty(address), "ledger: zero recipient"
    self.credits[msg.sender] = 0
    self.total_credits -= amount
    log Withdrawn(account=msg.sender, recipient=recipient, amount=amount)
    raw_call(recipient, b"", value=amount)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
def _credit(account: address, amount: uint256):
    """
    @notice Owe `amount` wei to `account`. Zero amounts are ignored.
    """
    if amount == 0:
        return
    self.credits[account] += amount
    self.total_credits += amount
    log Credited(account=account, amount=amount)
