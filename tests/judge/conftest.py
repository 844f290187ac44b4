"""The Judge, deployed once per test process on its Anvil (`judge_testing.Chain`) before the
module's tests run."""

from __future__ import annotations

import pytest
from judge_testing import judge_contract


@pytest.fixture(scope="module", autouse=True)
def judge():
    return judge_contract()
