"""A task followed in the browser: a real solver and verifier (worker threads) train and verify a
task on a real Anvil while its page is open; the page draws the loss curve of the published
checkpoints as `dtm task status --plot` computes it, then fetches the trained weights from the
content store, checks them as `dtm task result` does, and offers them as a file. A store that
answers other bytes than the weights' CID is refused; a proof whose checkpoint fails its committed
root gets no curve but the reason; a group task's page names the command that assembles its model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from eth_utils import keccak

from offchain.chain.suite import ETHER, Role, TaskState, format_ether
from offchain.distributed.group import group_task
from offchain.node import free_port
from offchain.storage import serve
from offchain.webapp import app_config, app_origins, serve_app
from offchain.workers.artifacts import fetch_proof, fetch_task, publish_group_task
from offchain.workers.solver import Solver
from offchain.workers.submitter import Submitter, fetch_result, proof_curve
from offchain.workers.verifier import Verifier
from tests.e2e.harness import SOLVER, SUBMITTER, VERIFIER, local_market, wait_for
from tests.e2e.test_group_e2e import SPEC as GROUP_SPEC
from tests.e2e.test_program_e2e import _post_program as post_program
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


def browse(m, tmp_path, scenario: str, **params) -> dict:
    """`scenario` of browser.mjs on the app served for the harness's market and its store."""
    web_port = free_port()
    with serve(str(m.home / "ipfs"), port=0, cors_origins=app_origins(web_port)) as store:
        app = serve_app(app_config({m.deployment.chain_id: m.anvil.url}, store.url, tmp_path / "deployments"),
                        port=web_port)
        try:
            return MarketApp(m.anvil.url, store.url, app.url, m.deployment, m.home,
                             tmp_path / "deployments").browse(scenario, **params)
        finally:
            app.close()


def test_a_task_followed_to_finalised_shows_its_loss_curve_and_its_weights(tmp_path):
    browser_available()
    with local_market(tmp_path) as m:
        task_id = m.post(steps=40, k=10)
        reader = m.market(VERIFIER)
        web_port = free_port()
        ready = tmp_path / "page-open"
        with serve(str(m.home / "ipfs"), port=0, cors_origins=app_origins(web_port)) as store:
            app = serve_app(app_config({m.deployment.chain_id: m.anvil.url}, store.url, tmp_path / "deployments"),
                            port=web_port)
            try:
                site = MarketApp(m.anvil.url, store.url, app.url, m.deployment, m.home, tmp_path / "deployments")
                with ThreadPoolExecutor(1) as pool:  # the page is open before the solver starts
                    following = pool.submit(site.browse, "follow_task", task_id=task_id, ready=str(ready),
                                            wait_ms=240_000, out=str(tmp_path / "downloaded.safetensors"), timeout=420)
                    wait_for(lambda: ready.exists() or following.done(), 120, "the task page")
                    m.start(Solver, SOLVER, Role.SOLVER)
                    m.start(Verifier, VERIFIER, Role.VERIFIER)
                    seen = following.result()
            finally:
                app.close()
            assert reader.task(task_id).state == TaskState.FINALISED
            expected = fetch_result(reader, m.store, task_id)
            created = reader.events("TaskCreated", reader.deployment.block, task_id=task_id)[0]["args"]
            bundle = fetch_task(m.store, created["spec_cid"], reader.task(task_id).spec_hash)
            curve = proof_curve(bundle, expected.proof, m.store, points=50)
            proof_cid = reader.events("ProofSubmitted", reader.deployment.block, task_id=task_id)[-1]["args"]["proof_cid"]
            [funded] = reader.contract.events.JackpotFunded().get_logs(from_block=m.deployment.block)
            # the same page on a store that answers one flipped byte for the trained weights
            with tampering(store.url, expected.weights_cid) as bad_store:
                app = serve_app(app_config({m.deployment.chain_id: m.anvil.url}, bad_store, tmp_path / "deployments"),
                                port=web_port)
                try:
                    refused = MarketApp(m.anvil.url, bad_store, app.url, m.deployment, m.home,
                                        tmp_path / "deployments").browse("get_result_refused", task_id=task_id)
                finally:
                    app.close()
    assert seen["page_errors"] == []
    # no curve while the task is open; drawn live once the proof is published, before it is finalised
    assert seen["opened"] == {"state": "open", "curves": 0}
    assert seen["drawn"]["state"] in ("submitted", "accepted")
    # the curve: every checkpoint of the 5 (under 50), as `dtm task status --plot` computes it (float32 in
    # torch, float64 in the page)
    assert seen["steps"] == [point.step for point in curve] == [0, 10, 20, 30, 40]
    assert seen["points"] == 5
    assert seen["losses"] == pytest.approx([point.loss for point in curve], rel=1e-5)
    assert curve[-1].loss < curve[0].loss
    assert seen["caption"] == (f"loss {curve[0].loss:.4f} → {curve[-1].loss:.4f} over 5 checkpoints, each checked against "
                               "its committed root; mean cross-entropy on the task's training rows.")
    assert {"step", "loss", "0", "20", "40"} <= set(seen["labels"])
    # fetched once (spec, model, proof, dataset, 5 checkpoints), not again on the blocks that followed
    assert seen["drawn"]["cats"] == 9 and set(seen["cats"][:9]) == {
        created["spec_cid"], bundle.task.model_cid, bundle.task.dataset_cid, proof_cid, *expected.proof.checkpoint_cids}
    assert seen["finalised"]["block"] > seen["drawn"]["block"] + 3 and seen["finalised"]["cats"] == 9
    # the weights
    assert refused["notice"]["text"] == (f"The content store answered other bytes than the checkpoint 4 {expected.weights_cid}: "
                                         "use another store.")
    assert refused["notice"]["kind"] == "error" and refused["downloads"] == 0
    assert seen["checked"].startswith(f"Trained weights {expected.weights_cid}: checked against the task's spec hash, "
                                      "the proof root it was paid for and the last of its 5 checkpoint roots; final loss ")
    assert seen["checked"].endswith(f"{expected.proof.final_loss:.4f}.")
    assert (tmp_path / "downloaded.safetensors").read_bytes() == m.store.cat(expected.weights_cid)
    # the market page lists the tax that funded the jackpot when the task was paid
    assert seen["jackpot"] == [f"{funded['blockNumber']}\tfunded {format_ether(funded['args']['amount'])}\t"
                               f"{format_ether(funded['args']['pool'])}"]


OTHER_SOLVER = 6  # an Anvil dev account no other role uses


class SwappingSolver(Solver):
    """A solver whose proof commits to the right checkpoint roots but names checkpoint 2's file as
    checkpoint 1's."""

    def _add_checkpoints(self, bundle, result, saved):
        cids = super()._add_checkpoints(bundle, result, saved)
        cids[1] = cids[2]
        return cids


def test_a_checkpoint_that_fails_its_root_shows_why_instead_of_a_curve(tmp_path):
    """And a program task's page points at the CLI for its curve."""
    browser_available()
    with local_market(tmp_path) as m:
        m.start(SwappingSolver, SOLVER, Role.SOLVER)
        task_id = m.post(steps=40, k=10)
        reader = m.market(VERIFIER)
        wait_for(lambda: any(reader.task(task_id).proof_root), 180, "the proof")
        m.start(Solver, OTHER_SOLVER, Role.SOLVER)  # the swapping one holds its task: this one takes the program
        program_id = post_program(m)
        wait_for(lambda: any(reader.task(program_id).proof_root), 180, "the program task's proof")
        [submitted] = reader.events("ProofSubmitted", reader.deployment.block, task_id=task_id)
        proof = fetch_proof(m.store, submitted["args"]["proof_cid"], reader.task(task_id).proof_root)
        created = reader.events("TaskCreated", reader.deployment.block, task_id=task_id)[0]["args"]
        bundle = fetch_task(m.store, created["spec_cid"], reader.task(task_id).spec_hash)
        with pytest.raises(ValueError, match="checkpoint 1 does not match"):  # the CLI refuses it too
            proof_curve(bundle, proof, m.store)
        seen = browse(m, tmp_path, "curve_refused", task_id=task_id, program_id=program_id)
    assert seen["page_errors"] == [] and seen["curves"] == 0 and seen["retry"] == 0  # no retry: the file is wrong
    assert seen["error"] == (f"Checkpoint 1 ({proof.checkpoint_cids[1]}) does not match its committed root in the proof: "
                             "the proof's solver published other weights than it committed to.")
    assert seen["program_note"] == f"This task trains its own program: `dtm task status {program_id} --plot` draws its loss curve."
    assert seen["program_curves"] == 0


def test_a_group_task_s_page_names_the_command_that_assembles_its_model(tmp_path):
    """A group task's model is its stages' last checkpoints, which `dtm task result` assembles and
    checks; its page says so where a task's loss curve goes, instead of failing on a spec that is
    not a task's. The proof is submitted by hand (the page reads its spec before the proof)."""
    browser_available()
    with local_market(tmp_path) as m:
        group = group_task(GROUP_SPEC)
        task_id = Submitter(market=m.market(SUBMITTER), store=m.store, home=m.home).post(
            publish_group_task(m.store, group), payment=ETHER, solver_stake=ETHER, expires_in=3_600, train_window=600)
        solver = m.market(SOLVER)
        solver.deposit(Role.SOLVER, 5 * ETHER)
        solver.transact("claim", task_id, keccak(b"secret"))
        wait_for(lambda: solver.w3.eth.block_number > solver.task(task_id).draw_block, 30, "the claim's next block")
        solver.transact("draw", task_id)
        solver.transact("submit", task_id, keccak(b"parts"), group.checkpoints, m.store.add_bytes(b"{}"))
        seen = browse(m, tmp_path, "group_task", task_id=task_id)
    assert seen["page_errors"] == [] and seen["curves"] == 0 and seen["errors"] == 0
    assert seen["note"] == (f"Task {task_id} is a group task (its spec document says 2 stages × 2 replicas): "
                            f"`dtm task result {task_id} --out FILE` assembles its model from the stages' checkpoints "
                            "and checks it.")
