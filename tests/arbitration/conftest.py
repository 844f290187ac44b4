"""Fixtures shared by the game's tests: the suite (market + game + checker + judge) and its parties,
deployed once per test module."""

from __future__ import annotations

import arbitration_testing as T
import pytest


@pytest.fixture(scope="module")
def suite():
    return T.deploy_game_suite()


@pytest.fixture(scope="module")
def parties(suite):
    return T.make_parties(suite.market)


@pytest.fixture
def syn():
    return T.synthetic(k=8, segments=4)
