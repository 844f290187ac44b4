import boa
import pytest

from offchain.chain.suite import Terms
from tests.conftest import NEVER_FORCED, events


def test_publish_terms__new_id_for_new_tasks_only(market, flow, actors):
    task_id = flow.create()
    new = NEVER_FORCED.replace(tax_ppm=54_321)
    market.publish_terms(new.as_tuple())
    [log] = events(market, "TermsPublished")
    assert log.terms_id == 2 == market.current_terms()
    assert market.tasks(task_id).terms_id == 1
    assert market.tasks(flow.create()).terms_id == 2


def test_publish_terms__not_owner__reverts(market, actors):
    with boa.env.prank(actors.stranger), boa.reverts("terms: caller is not the owner"):
        market.publish_terms(NEVER_FORCED.as_tuple())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tax_ppm": 100_001}, "terms: tax too high"),
        ({"verifier_fee_ppm": 200_001}, "terms: verifier fee too high"),
        ({"forced_error_ppm": 1_000_001}, "terms: forced error rate above one"),
        ({"winner_share_ppm": 500_001}, "terms: winner share too high"),
        ({"payout_ppm": 500_001}, "terms: payout share too high"),
        ({"verifier_bond": 0, "silence_slash": 0, "payout_cap": 0}, "terms: zero bond"),
        ({"challenge_bond": 0}, "terms: zero bond"),
        ({"silence_slash": NEVER_FORCED.verifier_bond // 2 + 1}, "terms: silence slash too high"),
        ({"min_payment": 0}, "terms: zero minimum payment"),
        ({"forced_error_ppm": 10_000, "min_payment": NEVER_FORCED.min_payment // 2}, "terms: jackpot payouts exceed the tax"),
        ({"min_solver_stake": NEVER_FORCED.verifier_bond - 1}, "terms: minimum solver stake too low"),
        ({"verify_window": 59}, "terms: bad window"),
        ({"verify_window": 0}, "terms: bad window"),
        ({"whistle_window": 30 * 86_400 + 1}, "terms: bad window"),
        ({"whistle_window": 2**256 - 1}, "terms: bad window"),
        ({"reveal_window": 1}, "terms: bad window"),
    ],
)
def test_owner_publishes_unbounded_terms__refused(market, change, reason):
    with boa.reverts(reason):
        market.publish_terms(NEVER_FORCED.replace(**change).as_tuple())


def test_owner_terms_at_every_bound__accepted(market):
    edge = NEVER_FORCED.replace(
        tax_ppm=100_000, verifier_fee_ppm=200_000, winner_share_ppm=500_000, payout_ppm=500_000,
        silence_slash=NEVER_FORCED.verifier_bond // 2, min_solver_stake=NEVER_FORCED.verifier_bond,
        verify_window=60, whistle_window=30 * 86_400, reveal_window=60,
        forced_error_ppm=1_000_000, payout_cap=NEVER_FORCED.min_payment // 10,
    )
    market.publish_terms(edge.as_tuple())
    assert Terms(*market.published(market.current_terms())) == edge


def test_ownership_moves_in_two_steps(market, actors):
    market.transfer_ownership(actors.stranger)
    [log] = events(market, "OwnershipTransferStarted")
    assert log.new_owner == actors.stranger == market.pending_owner()
    assert market.owner() == actors.owner  # nothing moves until the new owner accepts
    with boa.env.prank(actors.submitter), boa.reverts("terms: caller is not the pending owner"):
        market.accept_ownership()
    with boa.env.prank(actors.stranger):
        market.accept_ownership()
    [log] = events(market, "OwnershipTransferred")
    assert log.new_owner == actors.stranger == market.owner()
    assert market.pending_owner() == "0x0000000000000000000000000000000000000000"
    with boa.reverts("terms: caller is not the owner"):
        market.transfer_ownership(actors.owner)


def test_ownership_offer_to_a_wrong_address__can_be_withdrawn(market, actors):
    market.transfer_ownership(actors.stranger)
    market.transfer_ownership("0x0000000000000000000000000000000000000000")
    with boa.env.prank(actors.stranger), boa.reverts("terms: caller is not the pending owner"):
        market.accept_ownership()
    assert market.owner() == actors.owner


def test_constructor__arbiter_bound_elsewhere__reverts(suite):
    from tests.conftest import load_market, load_test_contract

    stray = load_test_contract("ManualArbiter").deploy(boa.env.generate_address())
    with boa.reverts("market: arbiter bound elsewhere"):
        load_market().deploy(stray.address, 0, NEVER_FORCED.as_tuple(), 60)


@pytest.mark.parametrize("min_window", [0, 4, 30 * 86_400 + 1])
def test_constructor__minimum_window_out_of_range__reverts(suite, min_window):
    from tests.conftest import deploy_suite

    with boa.reverts("terms: bad minimum window"):
        deploy_suite(NEVER_FORCED, min_window=min_window)


def test_terms_dataclass_matches_contract_struct(market):
    assert Terms(*market.published(1)) == NEVER_FORCED
