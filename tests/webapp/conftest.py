"""A market for the web app's browser tests: a real Anvil with the suite deployed, the content
store served over the Kubo RPC API, the app served as `dtm node up` serves it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from offchain.chain.client import Market, connect
from offchain.chain.deployment import Deployment
from offchain.chain.suite import ETHER, ROOT
from offchain.node import DEFAULT_ARBITER, dev_account, free_port, mine_every, start_anvil
from offchain.storage import serve
from offchain.webapp import DIST, app_config, app_origins, serve_app
from tests.chains import deployed

SCREENSHOTS = ROOT / "out" / "webapp" / "screenshots"


@dataclass
class MarketApp:
    rpc_url: str
    store_url: str
    app_url: str
    deployment: Deployment
    home: Path
    deployments: Path

    def market(self, index: int | None = None) -> Market:
        return Market(connect(self.rpc_url), self.deployment, None if index is None else dev_account(index))

    def dtm(self, *args: str) -> str:
        """The `dtm` command, as a user runs it against this market."""
        env = {**os.environ, "DTM_DEPLOYMENTS_DIR": str(self.deployments), "IPFS_API": self.store_url}
        done = subprocess.run([sys.executable, "-m", "offchain.cli", "--home", str(self.home), "--rpc", self.rpc_url, *args],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def browse(self, scenario: str, timeout: float = 180, **params) -> dict:
        """Runs `scenario` of browser.mjs in headless Chromium (for at most `timeout` s); what the page showed."""
        given = {"app_url": self.app_url, "chain_id": self.deployment.chain_id, "screenshots": str(SCREENSHOTS),
                 "chromium": shutil.which("chromium"), **params}
        done = subprocess.run(["node", str(Path(__file__).parent / "browser.mjs"), scenario], input=json.dumps(given),
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        assert done.returncode == 0, f"{scenario} failed in the browser:\n{done.stderr}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def posted(self, seen: dict, poster: int) -> tuple[int, str]:
        """The task the page says it posted (id, spec CID): its notice, submitter and solver stake."""
        task_id = int(seen["hash"].removeprefix("#/task/"))
        market = self.market()
        view = market.task(task_id)
        [created] = market.events("TaskCreated", market.deployment.block, task_id=task_id)
        spec_cid = created["args"]["spec_cid"]
        assert seen["posted"] == {"kind": "info", "text": f"Posted task {task_id} (spec {spec_cid}); 1 ETH is in escrow."}
        assert (view.submitter, view.solver_stake) == (dev_account(poster).address, ETHER)
        return task_id, spec_cid

    def wallet(self, index: int) -> dict:
        return {"key": "0x" + dev_account(index).key.hex().removeprefix("0x"), "rpcUrl": self.rpc_url}


def browser_available() -> None:
    """Skip, saying why, where the browser tests cannot run."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed: `make install` installs it (apt-get install -y chromium); "
                    "the browser tests need root and Debian's apt to get it")
    if not (DIST / "index.html").exists():
        pytest.skip("the web app is not built: `make install` builds it (node webapp/build.mjs)")


@pytest.fixture(scope="module")
def market_app(tmp_path_factory) -> MarketApp:
    browser_available()
    tmp = tmp_path_factory.mktemp("webapp")
    anvil = start_anvil()
    store = app = None
    try:
        deployment = deployed(anvil.url, tmp / "deployments", arbiter=DEFAULT_ARBITER, window=60)
        mine_every(anvil.url, 1)
        web_port = free_port()
        store = serve(str(tmp / "ipfs"), "127.0.0.1", 0, cors_origins=app_origins(web_port))
        app = serve_app(app_config({deployment.chain_id: anvil.url}, store.url, tmp / "deployments"), port=web_port)
        yield MarketApp(anvil.url, store.url, app.url, deployment, tmp / "home", tmp / "deployments")
    finally:
        if app is not None:
            app.close()
        if store is not None:
            store.close()
        anvil.stop()
