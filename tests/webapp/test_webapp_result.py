"""Getting a finalised task's trained weights in the browser: a real solver and verifier (worker
threads) train and verify a task on a real Anvil; the page fetches the weights from the content
store, checks them as `dtm task result` does, and offers them as a file; it plots the loss of every
checkpoint on the dataset. A store that answers other bytes than the weights' CID is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from offchain.chain.suite import Role, TaskState, format_ether
from offchain.node import free_port
from offchain.storage import serve
from offchain.webapp import app_config, app_origins, serve_app
from offchain.workers.artifacts import fetch_task
from offchain.workers.solver import Solver
from offchain.workers.submitter import fetch_result, proof_curve
from offchain.workers.verifier import Verifier
from tests.e2e.harness import SOLVER, VERIFIER, local_market, wait_for
from tests.webapp.conftest import MarketApp, browser_available

pytestmark = pytest.mark.e2e


@contextmanager
def tampering(upstream: str, cid: str) -> Iterator[str]:
    """A store in front of `upstream` that flips the last byte of file `cid` (a store that lies): its URL."""

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("origin", "content-type")}
            try:
                with urlopen(Request(upstream + self.path, data=body, headers=headers, method="POST")) as answer:
                    status, sent, data = answer.status, answer.headers, answer.read()
            except HTTPError as error:
                status, sent, data = error.code, error.headers, error.read()
            if f"arg={cid}" in self.path and status == 200:
                data = data[:-1] + bytes([data[-1] ^ 1])
            self.send_response(status)
            for name, value in sent.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_trained_weights_are_checked_and_downloaded_from_the_page(tmp_path):
    browser_available()
    with local_market(tmp_path) as m:
        m.start(Solver, SOLVER, Role.SOLVER)
        m.start(Verifier, VERIFIER, Role.VERIFIER)
        task_id = m.post(steps=40, k=10)
        reader = m.market(VERIFIER)
        wait_for(lambda: reader.task(task_id).state == TaskState.FINALISED, 180, "finalisation")
        expected = fetch_result(reader, m.store, task_id)
        created = reader.events("TaskCreated", reader.deployment.block, task_id=task_id)[0]["args"]
        losses = [point.loss for point in proof_curve(
            fetch_task(m.store, created["spec_cid"], reader.task(task_id).spec_hash), expected.proof, m.store)]
        [funded] = reader.contract.events.JackpotFunded().get_logs(from_block=m.deployment.block)

        web_port = free_port()
        with serve(str(m.home / "ipfs"), port=0, cors_origins=app_origins(web_port)) as store:
            app = serve_app(app_config({m.deployment.chain_id: m.anvil.url}, store.url, tmp_path / "deployments"),
                            port=web_port)
            try:
                site = MarketApp(m.anvil.url, store.url, app.url, m.deployment, m.home, tmp_path / "deployments")
                seen = site.browse("get_result", task_id=task_id, out=str(tmp_path / "downloaded.safetensors"))
            finally:
                app.close()
            # the same page on a store that answers one flipped byte for the trained weights
            with tampering(store.url, expected.weights_cid) as bad_store:
                app = serve_app(app_config({m.deployment.chain_id: m.anvil.url}, bad_store, tmp_path / "deployments"),
                                port=web_port)
                try:
                    refused = MarketApp(m.anvil.url, bad_store, app.url, m.deployment, m.home,
                                        tmp_path / "deployments").browse("get_result_refused", task_id=task_id)
                finally:
                    app.close()
    assert refused["notice"]["text"] == (f"The content store answered other bytes than the checkpoint 4 {expected.weights_cid}: "
                                         "use another store.")
    assert refused["notice"]["kind"] == "error" and refused["downloads"] == 0
    assert seen["page_errors"] == []
    assert seen["checked"].startswith(f"Trained weights {expected.weights_cid}: checked against the task's spec hash, "
                                      "the proof root it was paid for and the last of its 5 checkpoint roots; final loss ")
    assert seen["checked"].endswith(f"{expected.proof.final_loss:.4f}.")
    assert (tmp_path / "downloaded.safetensors").read_bytes() == m.store.cat(expected.weights_cid)
    # the page's curve: every checkpoint's loss on the dataset, as the demo computes it (float32 in torch,
    # float64 in the page)
    assert seen["losses"] == pytest.approx(losses, rel=1e-5)
    assert losses[-1] < losses[0]
    # the market page lists the tax that funded the jackpot when the task was paid
    assert seen["jackpot"] == [f"{funded['blockNumber']}\tfunded {format_ether(funded['args']['amount'])}\t"
                               f"{format_ether(funded['args']['pool'])}"]
    assert seen["caption"] == (f"Cross-entropy on the task's dataset at each of 5 checkpoints: {seen['losses'][0]:.4f} → "
                               f"{seen['losses'][-1]:.4f}.")
