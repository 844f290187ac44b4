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
MAX_WINDOW: constant(uint256) = 30 * 86_400


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EVENTS                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

event TermsPublished:
    terms_id: indexed(uint256)

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

# who may publish terms
owner: public(address)
# published terms, by id
published: public(HashMap[uint256, Terms])
# id of the terms new tasks get
current_terms: public(uint256)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTRUCTOR                                                   ║
# ╚═══════════════════════════════════════════════════════════════╝

@deploy
def __init__(initial: Terms):
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
    assert msg.sender == self.owner, "terms: caller is not the owner"
    assert new_owner != empty(address), "terms: new owner is the zero address"
    self._transfer_ownership(new_owner)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
def _publish(t: Terms) -> uint256:
    assert t.tax_ppm < PPM, "terms: tax too high"
    assert t.verifier_fee_ppm < PPM, "terms: verifier fee too high"
    assert t.forced_error_ppm <= PPM, "terms: forced error rate above one"
    assert t.winner_share_ppm <= PPM, "terms: winner share above one"
    assert t.payout_ppm <= PPM, "terms: payout share above one"
    assert t.silence_slash <= t.verifier_bond, "terms: silence slash above verifier bond"
    # a verifier that exposes its own accepted forced error through a second
    # account must lose more than the jackpot pays it
    assert t.payout_cap * PPM < (PPM - t.winner_share_ppm) * t.verifier_bond, "terms: payout cap not below forfeited bond"
    assert t.verify_window > 0 and t.verify_window <= MAX_WINDOW, "terms: bad verify window"
    assert t.whistle_window > 0 and t.whistle_window <= MAX_WINDOW, "terms: bad whistle window"
    assert t.reveal_window > 0 and t.reveal_window <= MAX_WINDOW, "terms: bad reveal window"
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
