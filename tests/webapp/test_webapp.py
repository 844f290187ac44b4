"""The web app in headless Chromium against a real Anvil, the deployed suite and the content store,
with a test wallet (an injected EIP-1193 provider signing with an Anvil dev key)."""

from __future__ import annotations

import gzip
import re

import pytest
import torch

from offchain.chain.suite import ETHER, Role, TaskState
from offchain.ml import digits_dataset
from offchain.ml.demo import program_task
from offchain.ml.exporter import mlp_preset
from offchain.node import dev_account, free_port
from offchain.storage import KuboStore, compute_cid
from offchain.storage.errors import ContentNotFound, FetchTimeout
from offchain.webapp import DIST, app_config, serve_app
from offchain.ml.data import load_dataset
from offchain.workers.artifacts import fetch_task
from tests.webapp.test_format import seconds_of
from tests.webapp.test_golden import data_files

pytestmark = pytest.mark.e2e

SUBMITTER, STAKER, REFUSER, POSTER, OWN_DATA = 1, 6, 7, 8, 9


@pytest.fixture(scope="module")
def posted(market_app) -> int:
    """A task posted with the Python CLI, as a user would."""
    out = market_app.dtm("--dev-account", str(SUBMITTER), "task", "post", "--steps", "40", "--k", "10", "--payment", "1")
    return int(re.search(r"task (\d+)", out).group(1))


def test_connect_on_the_wrong_network_switch_read_a_cli_task_stake_unbond_withdraw(market_app, posted):
    market = market_app.market()
    left = market.task(posted).expires - market.now()
    seen = market_app.browse("stake_and_unbond", task_id=posted, wallet=market_app.wallet(STAKER))
    assert seen["page_errors"] == []
    assert seen["wrong_network"] == ("Wrong network: your wallet is on chain 1; the market is on "
                                     "ethereum-local (chain 31337).")
    assert seen["network"] == "ethereum-local (31337)"
    assert seen["account"] == dev_account(STAKER).address
    assert seen["requests"][:3] == ["eth_requestAccounts", "eth_chainId", "wallet_switchEthereumChain"]

    # the market and the task as `dtm task list` and `dtm task status` show them
    task = market.task(posted)
    row = seen["task_row"].split("\t")
    assert row[:4] == [f"task {posted}", "open", "1 ETH", "1 ETH"]
    assert row[5].startswith("open for solvers closes in ")
    assert seen["jackpot"] == f"{market.call('pool') / ETHER:g} ETH"
    assert "of each payment funds it" in seen["jackpot_terms"]
    assert seen["only_mine"] == ["no tasks"]
    assert seen["task_state"] == "open"
    deadline = seen["task_deadline"].removeprefix("open for solvers closes in ")
    assert 0 <= left - seconds_of(deadline) < 60  # read within a minute of `left`
    assert seen["task_deadline_later"] != seen["task_deadline"]
    created = market.events("TaskCreated", market.deployment.block, task_id=posted)[0]
    assert seen["timeline"][0].split("\t")[2] == "TaskCreated"
    assert seen["timeline"][0].endswith(f"submitter={task.submitter} spec_cid={created['args']['spec_cid']}")

    # staking from the page moved exactly what the page says
    me = dev_account(STAKER).address
    assert seen["before"]["bonded"] == "0 ETH"
    assert seen["deposit_notice"] == {"kind": "info", "text": "Staked 2.5 ETH as solver, whistleblower."}
    assert seen["roles"] == "roles: solver, whistleblower"
    assert seen["after_deposit"] == {**seen["before"], "bonded": "2.5 ETH", "free": "2.5 ETH"}
    assert seen["unbond_notice"] == {"kind": "info", "text": "Unbonding 1 ETH: withdraw it here once the unbonding "
                                                             "delay has passed."}
    assert seen["after_unbond"] == {**seen["after_deposit"], "bonded": "1.5 ETH", "free": "1.5 ETH", "unbonding": "1 ETH"}
    countdown = seen["unbonding_countdown"].removeprefix("unbonding delay closes in ")
    assert 0 <= market.call("unbond_delay") - seconds_of(countdown) < 60  # read within a minute of unbonding
    assert seen["withdraw_enabled_before_delay"] is False
    assert seen["after_withdraw"] == {**seen["after_unbond"], "unbonding": "0 ETH", "credits": "1 ETH"}
    assert seen["withdraw_notice"] == {"kind": "info", "text": 'Withdrew 1 ETH of stake into your credits: "Withdraw '
                                       'credits" sends them to your wallet.'}
    blocks = {e["event"]: e["blockNumber"] for name in ("Deposited", "UnbondRequested", "StakeWithdrawn", "Credited")
              for e in market.events(name, market.deployment.block, account=me)}
    assert seen["activity"] == [f"block {blocks['StakeWithdrawn']}\twithdrew stake\t1 ETH",
                                f"block {blocks['Credited']}\tcredited\t1 ETH",
                                f"block {blocks['UnbondRequested']}\tstarted unbonding\t1 ETH",
                                f"block {blocks['Deposited']}\tstaked\t2.5 ETH"]
    bonded, locked, unbonding, _, roles = market.call("accounts", me)
    assert (bonded, locked, unbonding, roles) == (3 * ETHER // 2, 0, 0, Role.SOLVER | Role.WHISTLEBLOWER)

    # past its expiry (the clock moved past the unbonding delay), the CLI's task is refunded from the page
    assert seen["expire_notice"] == {"kind": "info", "text": f"Task {posted}: now refunded."}
    assert seen["expired_state"] == "refunded"
    assert market.task(posted).state == TaskState.REFUNDED
    assert market.call("credits", task.submitter) >= ETHER


def test_a_rejected_signature_and_a_bad_amount_say_what_to_do_and_send_nothing(market_app):
    seen = market_app.browse("rejected_signature", wallet=market_app.wallet(REFUSER))
    assert seen["page_errors"] == []
    assert seen["notice"] == {"kind": "error", "text": "Deposit cancelled: the wallet rejected the request. Press the "
                              "button again and approve it in your wallet to retry."}
    assert seen["button_enabled"] is True
    assert seen["bad_amount"] == {"kind": "error", "text": '"abc" is not an amount of ether: enter a number such as 1.5.'}
    assert seen["refused"]["kind"] == "error"
    assert seen["refused"]["text"].startswith("Unbond refused by the market: stakes: ")
    assert seen["refused"]["text"].endswith(". Nothing was sent; change the input and try again.")
    # neither the bad amount nor the refused unbond reached the wallet
    assert seen["requests"].count("eth_sendTransaction") == 1
    assert seen["bonded"] == "0 ETH"
    assert market_app.market().call("accounts", dev_account(REFUSER).address)[0] == 0


def test_a_task_posted_from_the_page_is_the_one_python_builds_and_checks(market_app):
    seen = market_app.browse("post_task", steps=40, wallet=market_app.wallet(POSTER))
    assert seen["page_errors"] == []
    # the wallet did not know the chain: the app added it (EIP-3085) after the switch failed with 4902
    assert seen["requests"][2:4] == ["wallet_switchEthereumChain", "wallet_addEthereumChain"]
    assert seen["bad_steps"] == {"kind": "error", "text": "Steps must be a multiple of the checkpoint interval 10: "
                                 "try 50."}
    task_id, spec_cid = market_app.posted(seen, POSTER)
    market = market_app.market()
    view = market.task(task_id)
    assert seen["task_state"] == "open"
    # posted, cancelled, credits withdrawn; the bad schedule never reached the wallet
    assert seen["requests"].count("eth_sendTransaction") == 3

    # byte-identical to what `dtm task post --dataset digits --steps 40` builds: the MLP preset's program
    reference = program_task(*mlp_preset(64, (32,), 10, batch_size=32, lr=0.1), digits_dataset(), steps=40, k=10,
                             seed=1, cid=compute_cid)
    assert spec_cid == compute_cid(reference.task.to_bytes())
    assert view.spec_hash == reference.task.hash()
    fetched = fetch_task(KuboStore(market_app.store_url), spec_cid, view.spec_hash)  # every artifact is there and checks
    assert fetched.task == reference.task

    # then cancelled from the task page, and the refund withdrawn from the stake page
    assert seen["cancel_notice"] == {"kind": "info", "text": f"Task {task_id} cancelled: its payment is in your credits "
                                     "(withdraw it on the Stake page)."}
    assert seen["cancelled_state"] == "cancelled"
    assert (seen["credits"], seen["credits_after"]) == ("1 ETH", "0 ETH")  # the whole payment came back
    assert seen["withdraw_notice"] == {"kind": "info", "text": "Withdrew 1 ETH."}
    assert market.task(task_id).state == TaskState.CANCELLED
    assert market.call("credits", dev_account(POSTER).address) == 0


def test_a_task_posted_from_the_page_on_your_own_csv_is_the_one_python_builds(market_app, tmp_path):
    data, _ = data_files()["header-strings.csv"]
    csv = tmp_path / "sizes.csv"
    csv.write_bytes(data)
    held_file = tmp_path / "held.safetensors"
    seen = market_app.browse("post_own_data", steps=40, csv=str(csv), holdout_out=str(held_file),
                             bad_csv="width,height,size\n1,2,big\n3,four,small\n", wallet=market_app.wallet(OWN_DATA))
    assert seen["page_errors"] == []
    assert seen["bad_file"] == {"kind": "error", "text": "bad.csv: line 3: non-numeric feature 'four'."}
    assert seen["summary"] == ("sizes.csv: 54 training rows + 6 held-out, 2 features, 2 classes; labels big=0, small=1. "
                               "The held-out rows stay in this browser: they download as a file when you post.")
    assert seen["dataset_menu_disabled"] is True
    task_id = int(seen["hash"].removeprefix("#/task/"))
    market = market_app.market()
    view = market.task(task_id)
    [created] = market.events("TaskCreated", market.deployment.block, task_id=task_id)
    spec_cid = created["args"]["spec_cid"]
    assert seen["posted"] == {"kind": "info", "text": f"Posted task {task_id} (spec {spec_cid}); 1 ETH is in escrow. "
                              f"Its 6 held-out rows were not uploaded: they download as {spec_cid}.safetensors (put it "
                              "in $DTM_HOME/holdout/ for `dtm task result` to score the result)."}
    assert seen["download_name"] == f"{spec_cid}.safetensors"

    # what `dtm task post --data sizes.csv --steps 40` builds: the training rows of load_dataset,
    # the MLP sized by the data; the held-out rows are the download and are not in the store
    loaded = load_dataset(csv, seed=1)
    store = KuboStore(market_app.store_url)
    fetched = fetch_task(store, spec_cid, view.spec_hash)
    assert torch.equal(fetched.dataset.x, loaded.train.x) and torch.equal(fetched.dataset.y, loaded.train.y)
    reference = program_task(*mlp_preset(2, (32,), 2, batch_size=32, lr=0.1), loaded.train, steps=40, k=10, seed=1,
                             cid=compute_cid)
    assert fetched.task == reference.task and spec_cid == compute_cid(reference.task.to_bytes())
    assert held_file.read_bytes() == loaded.holdout.to_bytes()
    with pytest.raises((ContentNotFound, FetchTimeout)):
        store.cat(compute_cid(loaded.holdout.to_bytes()), timeout=2)


def test_without_a_wallet_and_with_the_chain_down_the_page_says_what_to_do(market_app, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    app = serve_app(app_config({market_app.deployment.chain_id: dead}, market_app.store_url, market_app.deployments),
                    port=0)
    try:
        seen = market_app.browse("dead_chain", app_url=app.url)
    finally:
        app.close()
    assert seen["wallet_bar"] == ("No wallet found: install a browser wallet to post, stake and withdraw; reading works "
                                  "without one.")
    assert seen["notice"] == {"kind": "error", "text": f"Reading the market failed: the chain at {dead} does not answer. "
                              "Start it (`dtm node up`) and reload."}


def test_first_load_is_small_and_fast(market_app, posted, capsys):
    bundle = (DIST / "app.js").read_bytes()
    zipped = len(gzip.compress(bundle))
    seen = market_app.browse("first_load")
    with capsys.disabled():
        print(f"\nweb app: app.js {len(bundle) / 1024:.1f} KiB ({zipped / 1024:.1f} KiB gzip); first load: task list "
              f"shown after {seen['tasks_shown_ms']} ms, DOMContentLoaded {seen['dom_content_loaded_ms']:.0f} ms, "
              f"{seen['transferred_bytes'] / 1024:.1f} KiB transferred")
    assert seen["page_errors"] == []
    assert zipped < 64 * 1024
    assert seen["tasks_shown_ms"] < 5_000
