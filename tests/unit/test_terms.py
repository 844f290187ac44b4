import boa
import pytest

from offchain.chain.suite import Terms
from tests.conftest import NEVER_FORCED, events


def test_publish_terms__new_id_for_new_tasks_only(market, flow, actors):
    task_id = flow.create()
    new = NEVER_FORCED.replace(tax_ppm=123_456)
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
        ({"tax_ppm": 1_000_000}, "terms: tax too high"),
        ({"verifier_fee_ppm": 1_000_000}, "terms: verifier fee too high"),
        ({"forced_error_ppm": 1_000_001}, "terms: forced error rate above one"),
        ({"winner_share_ppm": 1_000_001}, "terms: winner share above one"),
        ({"payout_ppm": 1_000_001}, "terms: payout share above one"),
        ({"silence_slash": NEVER_FORCED.verifier_bond + 1}, "terms: silence slash above verifier bond"),
        ({"payout_cap": NEVER_FORCED.verifier_bond // 2}, "terms: payout cap not below forfeited bond"),
        ({"verify_window": 0}, "terms: bad verify window"),
        ({"whistle_window": 2**256 - 1}, "terms: bad whistle window"),
        ({"reveal_window": 0}, "terms: bad reveal window"),
    ],
)
def test_publish_terms__unsafe_terms__revert(market, change, reason):
    with boa.reverts(reason):
        market.publish_terms(NEVER_FORCED.replace(**change).as_tuple())


def test_transfer_ownership(market, actors):
    market.transfer_ownership(actors.stranger)
    [log] = events(market, "OwnershipTransferred")
    assert log.new_owner == actors.stranger == market.owner()
    with boa.reverts("terms: caller is not the owner"):
        market.transfer_ownership(actors.owner)
    with boa.env.prank(actors.stranger), boa.reverts("terms: new owner is the zero address"):
        market.transfer_ownership("0x0000000000000000000000000000000000000000")


def test_constructor__arbiter_bound_elsewhere__reverts(suite):
    from tests.conftest import load_market, load_test_contract

    stray = load_test_contract("ManualArbiter").deploy(boa.env.generate_address())
    with boa.reverts("market: arbiter bound elsewhere"):
        load_market().deploy(stray.address, 0, NEVER_FORCED.as_tuple())


def test_terms_dataclass_matches_contract_struct(market):
    assert Terms(*market.published(1)) == NEVER_FORCED
