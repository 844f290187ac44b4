"""The market's everyday commands against a real Anvil: amounts in ether, deadlines named."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from offchain.chain.deployment import deployment_path
from offchain.chain.suite import ETHER, TaskState, format_ether
from offchain.cli import main
from offchain.node import LOCAL_DEPLOYMENT
from tests.e2e.harness import SUBMITTER, local_market

pytestmark = pytest.mark.e2e
STAKER = 5


def _advance(harness, seconds: int) -> None:
    w3 = harness.market(0).w3
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


def test_stake_unbond_withdraw_list_cancel_expire_jackpot__in_ether(tmp_path):
    with local_market(tmp_path) as m:
        def dtm(account, *args):
            result = CliRunner().invoke(main, ["--home", str(m.home), "--rpc", m.anvil.url, "--deployment",
                                               str(deployment_path(*LOCAL_DEPLOYMENT, tmp_path / "deployments")),
                                               "--dev-account", str(account), *args])
            return result

        assert dtm(STAKER, "stake", "--role", "solver", "--amount", "2").exit_code == 0
        shown = dtm(STAKER, "balance").output
        assert "roles: solver" in shown and "bonded     2 ETH  (locked 0 ETH, free 2 ETH)" in shown
        assert dtm(STAKER, "unbond", "--amount", "0.5").exit_code == 0
        assert re.search(r"unbonding  0\.5 ETH  \(withdrawable in \d+ s\)", dtm(STAKER, "balance").output)
        assert dtm(STAKER, "withdraw-stake").exit_code != 0  # still unbonding: one-line refusal
        _advance(m, 3_601)
        withdrawn = dtm(STAKER, "withdraw-stake")
        assert withdrawn.exit_code == 0 and "withdrew 0.5 ETH of stake" in withdrawn.output
        assert "bonded     1.5 ETH" in dtm(STAKER, "balance").output

        first = m.post(steps=8, k=4)
        listed = dtm(STAKER, "task", "list").output
        assert re.search(rf"task +{first}  open +payment 1 ETH", listed)
        assert dtm(STAKER, "task", "list", "--mine").output.strip() == "no tasks"
        assert "open for solvers closes in" in dtm(STAKER, "task", "status", str(first)).output
        assert "escrow     1 ETH  held for your unfinished tasks" in dtm(SUBMITTER, "balance").output

        assert dtm(STAKER, "task", "cancel", str(first)).exit_code != 0  # not the submitter
        assert dtm(SUBMITTER, "task", "cancel", str(first)).exit_code == 0
        assert m.market(0).task(first).state == TaskState.CANCELLED
        credits = m.market(0).call("credits", m.market(SUBMITTER).account.address)
        assert credits == ETHER
        paid = dtm(SUBMITTER, "withdraw")
        assert paid.exit_code == 0 and "withdrew 1 ETH" in paid.output
        wallet = m.market(0).ether(m.market(SUBMITTER).account.address)
        assert f"wallet     {format_ether(wallet)}  the account's own" in dtm(SUBMITTER, "balance").output
        assert dtm(SUBMITTER, "withdraw").output.strip().endswith("no credits to withdraw")

        second = m.post(steps=8, k=4)
        _advance(m, 3_700)
        status = dtm(STAKER, "task", "status", str(second)).output
        assert re.search(r"open for solvers closed \d+ s ago: anyone may expire it", status)
        assert dtm(STAKER, "task", "expire", str(second)).exit_code == 0
        assert m.market(0).task(second).state == TaskState.REFUNDED
        assert "refunded" in dtm(STAKER, "task", "list", "--state", "refunded").output

        jackpot = dtm(STAKER, "jackpot").output
        assert jackpot.startswith("jackpot ") and "per proven forced error" in jackpot
        bad = dtm(STAKER, "unbond", "--amount", "-1")
        assert bad.exit_code != 0 and "must be positive" in bad.output


def test_task_post__unfunded_account_and_payments_below_the_minimum__one_line_nothing_uploaded(tmp_path):
    from eth_account import Account

    from offchain import accounts

    with local_market(tmp_path) as m:
        home = m.home
        accounts.save(home, "empty", Account.create(), "pw")

        def post(account: list[str], *options: str):
            return CliRunner().invoke(main, ["--home", str(home), "--rpc", m.anvil.url, "--deployment",
                                             str(deployment_path(*LOCAL_DEPLOYMENT, tmp_path / "deployments")),
                                             *account, "task", "post", "--steps", "8", "--k", "4", *options],
                                      env={"DTM_PASSWORD": "pw"})

        before = sorted((home / "ipfs").rglob("*")) if (home / "ipfs").exists() else []
        unfunded = post(["--account", "empty"])
        assert unfunded.exit_code != 0 and "has 0 ETH; the payment needs 1 ETH plus gas: fund it first" in unfunded.output
        low = post(["--dev-account", str(SUBMITTER)], "--payment", "0.01")
        assert low.exit_code != 0 and "payment 0.01 ETH is below the market's minimum 0.2 ETH" in low.output
        stake = post(["--dev-account", str(SUBMITTER)], "--solver-stake", "0.1")
        assert stake.exit_code != 0 and "solver stake 0.1 ETH is below the market's minimum 1 ETH" in stake.output
        for result in (unfunded, low, stake):
            assert len(result.output.strip().splitlines()) == 1
        after = sorted((home / "ipfs").rglob("*")) if (home / "ipfs").exists() else []
        assert after == before
