# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title terms
@notice Versioned market terms. The owner may publish new terms at any time,
        but every task keeps the terms in force when it was created, so no
        change can reach a task already under way.
"""

# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

PPM: constant(uint256) = 1_000_000
# no deployment may allow windows shorter than this
MIN_WINDOW_FLOOR: constant(uint256) = 5
MAX_WINDOW: constant(uint256) = 30 * 86_400
# ceilings on what the owner may publish
MAX_TAX_PPM: constant(uint256) = 100_000
MAX_VERIFIER_FEE_PPM: constant(uint256) = 200_000
MAX_WINNER_SHARE_PPM: constant(uint256) = 500_000
MAX_PAYOUT_PPM: constant(uint256) = 500_000
# a silent verifier loses at most half its bond
MAX_SILENCE_SLASH_PPM: constant(uint256) = 500_000


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EVENTS                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

event TermsPublished:
    terms_id: indexed(uint256)

event OwnershipTransferStarted:
    previous_owner: indexed(address)
    new_owner: indexed(address)

event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ STORAGE                                                       ║
# ╚═══════════════════════════════════════════════════════════════╝

struct Terms:
    tax_ppm: uint256             # share of each payment that funds the jackpot
    verifier_fee_ppm: uint256    # share of the payment earned by the accepting verifier
    forced_error_ppm: uint256    # probability p of a forced error per task
    verifier_bond: uint256       # stake a drawn verifier locks until the task ends
    challenge_bond: uint256      # stake a whistleblower locks per challenge
    silence_slash: uint256       # taken from a verifier that lets its window pass
    winner_share_ppm: uint256    # share of a slash paid to the winner; the rest funds the jackpot
    payout_ppm: uint256          # share of the jackpot paid per caught forced error
    payout_cap: uint256          # absolute cap of one jackpot payout
    verify_window: uint256       # seconds a drawn verifier has to accept or challenge
    whistle_window: uint256      # seconds whistleblowers have after an accept
    reveal_window: uint256       # seconds a solver has to reveal or resubmit
    min_payment: uint256         # smallest payment a task may escrow
    min_solver_stake: uint256    # smallest stake a task may ask of its solver

# shortest window any published terms may set; fixed at deploy
min_window: public(immutable(uint256))
# who may publish terms
owner: public(address)
# who may accept ownership; empty when no transfer is under way
pending_owner: public(address)
# published terms, by id
published: public(HashMap[uint256, Terms])
# id of the terms new tasks get
current_terms: public(uint256)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTRUCTOR                                                   ║
# ╚═══════════════════════════════════════════════════════════════╝

@deploy
def __init__(initial: Terms, min_window_: uint256):
    assert min_window_ >= MIN_WINDOW_FLOOR and min_window_ <= MAX_WINDOW, "terms: bad minimum window"
    min_window = min_window_
    self._transfer_ownership(msg.sender)
    self._publish(initial)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EXTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def publish_terms(new_terms: Terms) -> uint256:
    """
    @notice Publish terms for tasks created from now on.
    @return The id of the new terms.
    """
    assert msg.sender == self.owner, "terms: caller is not the owner"
    return self._publish(new_terms)


@external
def transfer_ownership(new_owner: address):
    """
    @notice Offer ownership to `new_owner`, who must accept it; the zero
            address withdraws the offer.
    """
    assert msg.sender == self.owner, "terms: caller is not the owner"
    self.pending_owner = new_owner
    log OwnershipTransferStarted(previous_owner=msg.sender, new_owner=new_owner)


@external
def accept_ownership():
    assert msg.sender == self.pending_owner, "terms: caller is not the pending owner"
    self.pending_owner = empty(address)
    self._transfer_ownership(msg.sender)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
def _publish(t: Terms) -> uint256:
    assert t.tax_ppm <= MAX_TAX_PPM, "terms: tax too high"
    assert t.verifier_fee_ppm <= MAX_VERIFIER_FEE_PPM, "terms: verifier fee too high"
    assert t.forced_error_ppm <= PPM, "terms: forced error rate above one"
    assert t.winner_share_ppm <= MAX_WINNER_SHARE_PPM, "terms: winner share too high"
    assert t.payout_ppm <= MAX_PAYOUT_PPM, "terms: payout share too high"
    assert t.verifier_bond > 0 and t.challenge_bond > 0, "terms: zero bond"
    assert t.silence_slash * PPM <= t.verifier_bond * MAX_SILENCE_SLASH_PPM, "terms: silence slash too high"
    assert t.min_payment > 0, "terms: zero minimum payment"
    # the jackpot pays out less per task, in expectation, than a task pays in tax
    assert t.forced_error_ppm * t.payout_cap <= t.tax_ppm * t.min_payment, "terms: jackpot payouts exceed the tax"
    # a solver and a whistleblower that expose a verifier on purpose lose more than they win
    assert t.min_solver_stake * (PPM - t.winner_share_ppm) >= t.winner_share_ppm * t.verifier_bond, "terms: minimum solver stake too low"
    for window: uint256 in [t.verify_window, t.whistle_window, t.reveal_window]:
        assert window >= min_window and window <= MAX_WINDOW, "terms: bad window"
    terms_id: uint256 = self.current_terms + 1
    self.published[terms_id] = t
    self.current_terms = terms_id
    log TermsPublished(terms_id=terms_id)
    return terms_id


@internal
def _transfer_ownership(new_owner: address):
    previous: address = self.owner
    self.owner = new_owner
    log OwnershipTransferred(previous_owner=previous, new_owner=new_owner)
