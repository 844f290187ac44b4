"""The Judge is deployed once per module, outside the per-example anchors of hypothesis, so the
fuzz tests do not redeploy it for every example."""

from __future__ import annotations

import pytest
from judge_testing import judge_contract


@pytest.fixture(scope="module", autouse=True)
def judge():
    return judge_contract()
