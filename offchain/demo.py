"""`dtm demo`: a whole market on one machine, every role its own process.

A local Anvil with the suite deployed, the embedded IPFS store served over the
Kubo RPC API, a submitter posting a digits classifier (an MLP) and then a
transformer language model (a GPT trained with AdamW, warm-up and cosine on
real text), an honest solver, a solver that corrupts one element of the
transformer's attention weights (and trains on consistently from there), a
verifier and a whistleblower. The cheater's proof is challenged and the dispute
game narrows it to one step, then to the one wrong element of the attention
softmax, which the chain re-computes; the cheater is slashed, its task reopens
and the honest solver finishes it. The demo ends when both tasks are finalised
and paid, and writes a loss plot and the tasks' timelines. The market's web app
is served while it runs (and after, with `--keep`, until interrupted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from offchain.chain.client import Market, connect
from offchain.chain.suite import ETHER, Role, TaskState
from offchain.dispute.status import ENDINGS
from offchain.log import get_logger
from offchain.node import (
    DEFAULT_ARBITER,
    deploy,
    dev_account,
    free_port,
    mine_every,
    start_anvil,
    wait_for,
)
from offchain.storage import KuboStore, StorageError
from offchain.timeline import task_timeline
from offchain.webapp import WebAppNotBuilt, app_config, serve_app
from offchain.workers.artifacts import PublishedTask, fetch_proof, fetch_task, publish_program_task
from offchain.workers.submitter import CurvePoint, Submitter, fetch_result, plot_curves, proof_curve

log = get_logger("dtm.demo")

WINDOW = 30  # long enough for the verifier to fetch and replay its whole sample on a busy laptop
CLOCK = 30
TIMEOUT = 240
SUBMITTER, HONEST, CHEATER, VERIFIER, WHISTLEBLOWER = 1, 2, 3, 4, 5
ROLES = {
    HONEST: ("solver", ["solver", "run"], Role.SOLVER),
    CHEATER: ("cheater", ["solver", "run", "--cheat", "element", "--corrupt-op", "safe_softmax"], Role.SOLVER),
    VERIFIER: ("verifier", ["verifier", "run"], Role.VERIFIER),
    WHISTLEBLOWER: ("whistleblower", ["whistleblower", "run"], Role.WHISTLEBLOWER),
}


def run_demo(out: Path, keep: bool = False) -> int:
    started = time.monotonic()
    shutil.rmtree(out, ignore_errors=True)
    (out / "logs").mkdir(parents=True)
    processes: list[subprocess.Popen] = []
    app = None
    anvil = start_anvil()
    try:
        deployment = deploy(anvil.url, arbiter=DEFAULT_ARBITER, window=WINDOW, clock=CLOCK, forced_error_ppm=0,
                            deployments=out / "deployments")
        mine_every(anvil.url, 1)
        log.info("chain %s, market %s", anvil.url, deployment.market)
        ipfs_port = free_port()
        env = {**os.environ, "DTM_RPC": anvil.url, "IPFS_API": f"/ip4/127.0.0.1/tcp/{ipfs_port}/http",
               "DTM_DEPLOYMENTS_DIR": str(out / "deployments"), "DTM_HOME": str(out / "home")}
        processes.append(_spawn(out, "ipfs", ["--home", str(out / "ipfs-node"), "ipfs", "serve", "--port", str(ipfs_port)], env))
        store = KuboStore(env["IPFS_API"])
        wait_for(lambda: _answers(store), 30, "the IPFS RPC server")
        try:
            app = serve_app(app_config({deployment.chain_id: anvil.url}, f"http://127.0.0.1:{ipfs_port}",
                                       out / "deployments"), port=free_port())
            log.info("the market's web app: %s", app.url)
        except WebAppNotBuilt as exc:
            log.warning("%s", exc)

        w3 = connect(anvil.url)
        for index, (_, _, role) in ROLES.items():
            Market(w3, deployment, dev_account(index)).deposit(role, 5 * ETHER)
        for index, (name, args, _) in ROLES.items():
            processes.append(_spawn(out, name, ["--dev-account", str(index), *args, "--poll", "0.5"], env))

        submitter = Submitter(market=Market(w3, deployment, dev_account(SUBMITTER)), store=store, home=out / "home")
        terms = {"payment": ETHER, "solver_stake": ETHER, "expires_in": 600, "train_window": 120}
        classifier = submitter.post(_classifier_task(store), **terms)
        # the honest solver takes the classifier (the cheater only cheats on attention), then is busy
        wait_for(lambda: submitter.market.task(classifier).state != TaskState.OPEN, TIMEOUT, "a solver to claim task 1")
        task_ids = [classifier, submitter.post(_transformer_task(store), **terms)]
        outcome = wait_for(lambda: _settled(submitter.market, task_ids), TIMEOUT, "the tasks to settle")
        for task_id in task_ids:
            submitter._advance_safely(task_id)
        _report(out, submitter, store, task_ids, outcome)
        log.info("demo finished in %.0f s", time.monotonic() - started)
        if keep:
            where = f"the web app at {app.url}, " if app else ""
            log.info("keeping %sthe chain at %s and the store up; Ctrl-C stops them", where, anvil.url)
            try:
                while anvil.process.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0
    except TimeoutError as exc:
        log.error("%s; worker logs are in %s", exc, out / "logs")
        return 1
    finally:
        if app is not None:
            app.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        anvil.stop()


def _classifier_task(store: KuboStore) -> PublishedTask:
    """The MLP preset (64-32-10, SGD) on the digits, as `dtm task post` makes it."""
    from offchain.ml import digits_dataset
    from offchain.ml.exporter import mlp_preset

    return publish_program_task(store, *mlp_preset(64, (32,), 10, batch_size=32, lr=0.1), digits_dataset(),
                                steps=300, k=10, seed=1)


def _transformer_task(store: KuboStore) -> PublishedTask:
    """A one-block GPT (vocab 49, 12 positions, width 32, 4 heads) with AdamW, warm-up and cosine
    on 400 rows of the text corpus; every element of its step is judgeable on chain."""
    import torch

    from offchain.ml.artifacts import ALPHABET, text_dataset
    from offchain.ml.capture import ExportConfig, export_program
    from offchain.ml.models import GPT
    from offchain.ml.optim import OptimizerConfig

    torch.manual_seed(0)
    model = GPT(len(ALPHABET) + 1, 12, 32, 4, 1)
    optimizer = OptimizerConfig("adamw", 1e-2, weight_decay=0.01, warmup_steps=6, schedule="cosine", clip_norm=1.0)
    program = export_program(model, ExportConfig(4, (12,), loss="lm_cross_entropy", optimizer=optimizer))
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    return publish_program_task(store, program, optimizer, weights, text_dataset(12, ALPHABET, 400),
                                steps=60, k=6, seed=3)


def _spawn(out: Path, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    handle = open(out / "logs" / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "offchain.cli", *args], env=env, stdout=handle, stderr=subprocess.STDOUT)


def _answers(store: KuboStore) -> bool:
    try:
        store.add_bytes(b"ping")
        return True
    except StorageError:  # not listening yet
        return False


def _settled(market: Market, task_ids: list[int]) -> dict[int, TaskState] | None:
    """Done when every task is finalised and a cheater has lost a dispute on chain."""
    states = {task_id: market.task(task_id).state for task_id in task_ids}
    lost = [e for e in market.arbiter.events.DisputeEnded().get_logs(from_block=market.deployment.block)
            if not e["args"]["solver_won"]]
    return states if lost and all(s == TaskState.FINALISED for s in states.values()) else None


def _report(out: Path, submitter: Submitter, store: KuboStore, task_ids: list[int], states: dict[int, TaskState]) -> None:
    market = submitter.market
    start = market.w3.eth.get_block(market.deployment.block)["timestamp"]
    names = {dev_account(HONEST).address: "honest solver", dev_account(CHEATER).address: "cheating solver"}
    curves: dict[str, list[CurvePoint]] = {}
    programs = {}  # task id -> its program, for the dispute lines
    lines = []
    for task_id in task_ids:
        view = market.task(task_id)
        created = market.events("TaskCreated", market.deployment.block, task_id=task_id)[0]["args"]
        bundle = fetch_task(store, created["spec_cid"], view.spec_hash)
        for submitted in market.events("ProofSubmitted", market.deployment.block, task_id=task_id):
            proof = fetch_proof(store, submitted["args"]["proof_cid"], submitted["args"]["proof_root"])
            who = names.get(submitted["args"]["solver"], submitted["args"]["solver"])
            verdict = "paid" if proof.root == view.proof_root and view.state == TaskState.FINALISED else "slashed"
            curves[f"task {task_id}, {who} ({verdict})"] = proof_curve(bundle, proof, store)
        lines.append(f"task {task_id}: {states[task_id].name.lower()}")
        for row in task_timeline(market, task_id):
            lines.append(f"  t={row.timestamp - start:>4}s  block {row.block:>4}  {row.event:<19} {row.detail}")
        result = fetch_result(market, store, task_id)
        programs[task_id] = bundle.graph.program
        what = "the text" if bundle.graph.program.meta.get("loss") == "lm_cross_entropy" else "digits"
        lines.append(f"  trained weights {result.weights_cid}: {result.training.figures()} on {what}")
    for ended in market.arbiter.events.DisputeEnded().get_logs(from_block=market.deployment.block):
        args = ended["args"]
        winner = "solver" if args["solver_won"] else "challenger"
        lines.append(f"dispute {args['dispute_id']} on task {args['task_id']}: the {winner} won "
                     f"({ENDINGS[args['reason']]}{_proven_node(market, programs, ended)})")
    cheater = market.call("accounts", dev_account(CHEATER).address)[0]
    lines.append(f"cheating solver's stake: {cheater / ETHER:.2f} of 5.00 ETH left")
    (out / "timeline.txt").write_text("\n".join(lines) + "\n")
    plot_curves(out / "loss.png", curves, "Published checkpoints: loss on the task's dataset")
    print("\n".join(lines))
    print(f"\nwrote {out / 'loss.png'} and {out / 'timeline.txt'}")


def _proven_node(market: Market, programs: dict, ended) -> str:
    """Where a program element proof ended the dispute (``: node 123 (safe_softmax, from ...)``)."""
    tx = market.w3.eth.get_transaction(ended["transactionHash"])
    if market.programs is None or tx["to"] != market.programs.address:
        return ""
    fn, args = market.programs.decode_function_input(tx["input"])
    if fn.fn_name != "prove_element":
        return ""
    return f": {programs[ended['args']['task_id']].describe(args['node'])} element {args['index']}"
