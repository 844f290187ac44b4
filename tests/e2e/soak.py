"""A soak of the whole market: worker processes killed and restarted at random, the content store
and the chain restarted, a reorganisation injected, tasks posted over time; then the books are
checked from chain state alone (`check_books`, `check_no_move_sent_twice`).

`Soak` owns the pieces (Anvil with its state saved to disk, the content store's RPC server, the
worker processes); `Chaos` kills a random worker at random moments and restarts it with the same
home and account. Everything random comes from one seeded `random.Random`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3.logs import DISCARD

from offchain.chain.client import ChainError, Market, TransactionReverted, connect
from offchain.chain.deployment import Deployment
from offchain.chain.suite import ETHER, TERMINAL_STATES, Role
from offchain.node import Anvil, deploy, dev_account, free_port, mine_every, start_anvil, wait_for
from offchain.storage import KuboStore, StorageError, serve
from offchain.workers.artifacts import PublishedTask
from offchain.workers.submitter import Submitter
from tests.e2e.harness import Harness

OWNER, SUBMITTER = 0, 1
# what a worker process imports before it follows the market: most of its start
WORKER_IMPORTS = "import torch, web3, offchain.cli, offchain.workers.solver, offchain.workers.verifier"
MARGIN = 5  # a worker's `margin`: it moves only while this many seconds of a window remain


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    account: int
    argv: tuple[str, ...]  # after `dtm --dev-account N`
    roles: Role
    deposit: int

    @property
    def address(self) -> str:
        return dev_account(self.account).address


HONEST_SOLVERS = (WorkerSpec("solver-a", 2, ("solver", "run"), Role.SOLVER, 5 * ETHER),
                  WorkerSpec("solver-b", 3, ("solver", "run"), Role.SOLVER, 5 * ETHER))
# every segment of the cheater's proof is wrong, so every sample catches it: the soak tests the market
# under chaos; how often a sample catches fewer wrong segments is bench/detection.py's measure
CHEAT = WorkerSpec("solver-cheat", 4, ("solver", "run", "--cheat", "skip"), Role.SOLVER, 20 * ETHER)
VERIFIER = WorkerSpec("verifier", 5, ("verifier", "run"), Role.VERIFIER, 3 * ETHER)
LAZY = WorkerSpec("verifier-lazy", 6, ("verifier", "run", "--lazy"), Role.VERIFIER, 3 * ETHER)
WHISTLEBLOWER = WorkerSpec("whistleblower", 7, ("whistleblower", "run"), Role.WHISTLEBLOWER, 5 * ETHER)
WORKERS = (*HONEST_SOLVERS, CHEAT, VERIFIER, LAZY, WHISTLEBLOWER)


@dataclass(frozen=True)
class Plan:
    """What one soak does (seconds throughout)."""

    tasks: int = 20
    post_every: tuple[float, float] = (1.0, 3.0)   # between two posts
    kill_every: tuple[float, float] = (6.0, 14.0)  # between two kills
    down_for: tuple[float, float] = (0.2, 2.0)     # a killed worker stays down this long before its restart
    reorg_at: float = 20.0   # after the first post (each event is jittered by up to 10 s)
    store_restart_at: float = 35.0
    chain_restart_at: float = 50.0
    min_window: int = 30     # verify, whistleblower and reveal windows: at least this, see `window_for`
    clock: int = 120         # each side's dispute clock (it runs out only for a side that stalls)
    train_window: int = 120
    expires_in: int = 120    # an ordinary task's life while open
    cancel_share: float = 0.1  # tasks the submitter cancels if still open a moment after posting
    brief_share: float = 0.1   # tasks posted with a few seconds to live while open
    timeout: float = 600.0     # for every task to end, after the last post

    def window_for(self, start_seconds: float) -> int:
        """A window that outlasts one kill at its start on a machine as busy as when measured: the
        margin, a restart (the measured start, half again, the machine being busier with every
        worker up) and the move itself. A worker is killed again only once it has followed the
        market for a whole window (`Chaos`)."""
        return max(self.min_window, int(MARGIN + 1.5 * start_seconds + 10))


@dataclass
class Process:
    spec: WorkerSpec
    popen: subprocess.Popen
    log: Path
    offset: int  # the log's size at launch
    started: float  # wall clock (`time.time()`, as block timestamps)
    ready_at: float | None = None  # when it was first seen following the market
    kills: int = 0

    def ready_for(self) -> float:
        """Seconds since this run of the worker started following the market (0 before)."""
        if self.ready_at is None:
            with open(self.log, "rb") as log:
                log.seek(self.offset)
                if b" watching market " not in log.read():
                    return 0.0
            self.ready_at = time.time()
        return time.time() - self.ready_at


@dataclass
class Soak:
    root: Path
    plan: Plan
    rng: random.Random
    anvil: Anvil | None = None
    deployment: Deployment | None = None
    server: Any = None
    window: int = 0
    start_seconds: float = 0.0
    processes: dict[str, Process] = field(default_factory=dict)
    # per worker, every span of wall-clock time it was not following the market (start to ready)
    down: dict[str, list[list[float]]] = field(default_factory=lambda: defaultdict(list))
    events: list[str] = field(default_factory=list)  # what the soak did, with times, for the report
    lock: threading.RLock = field(default_factory=threading.RLock)
    t0: float = field(default_factory=time.monotonic)

    # ── infrastructure ──────────────────────────────────────────────
    @property
    def state_file(self) -> Path:
        return self.root / "chain" / "state.json"

    def note(self, what: str) -> None:
        line = f"{time.monotonic() - self.t0:7.1f} s  {what}"
        self.events.append(line)
        print(line, flush=True)

    def start_chain(self) -> None:
        """Anvil (state saved to disk), the suite, the store; the windows are sized to this machine:
        a worker killed at the start of its window restarts and still makes its move
        (`window_for`), so an honest party loses only to a fault of the product, never to the
        chaos alone."""
        probe = subprocess.Popen([sys.executable, "-c", f"import time; t = time.perf_counter(); {WORKER_IMPORTS}; "
                                  "print(time.perf_counter() - t)"], stdout=subprocess.PIPE, text=True)
        self.port = free_port()
        self.anvil = start_anvil(self.port, state=self.state_file)
        self.deployment = deploy(self.anvil.url, window=10, clock=self.plan.clock, forced_error_ppm=0,
                                 deployments=self.root / "deployments")
        mine_every(self.anvil.url, 1)
        self.start_seconds = float(probe.communicate(timeout=300)[0])
        self.window = self.plan.window_for(self.start_seconds)
        owner = self.market(OWNER)
        terms = owner.terms(owner.call("current_terms")).replace(
            verify_window=self.window, whistle_window=self.window, reveal_window=self.window)
        owner.transact("publish_terms", terms.as_tuple())
        self.note(f"a worker starts in ~{self.start_seconds:.0f} s here: verify, whistleblower and reveal windows "
                  f"of {self.window} s, a dispute clock of {self.plan.clock} s a side")
        self.ipfs_port = free_port()
        self.server = serve(str(self.root / "ipfs"), port=self.ipfs_port)
        for spec in WORKERS:
            self.market(spec.account).deposit(spec.roles, spec.deposit)

    def market(self, index: int) -> Market:
        return Market(connect(self.anvil.url), self.deployment, dev_account(index))

    def store(self) -> KuboStore:
        return KuboStore(self.server.url)

    def restart_store(self) -> None:
        with self.lock:
            self.server.close()
            self.note("content store stopped")
            time.sleep(self.rng.uniform(1.0, 3.0))
            self.server = serve(str(self.root / "ipfs"), port=self.ipfs_port)
            self.note("content store restarted")

    def restart_chain(self) -> None:
        """Anvil stopped (its state written to disk) and started again from that state."""
        with self.lock:
            self.anvil.stop()
            self.note(f"chain stopped at its state in {self.state_file.name}")
            time.sleep(self.rng.uniform(0.5, 2.0))
            self.anvil = start_anvil(self.port, state=self.state_file)
            mine_every(self.anvil.url, 1)
            self.note(f"chain restarted at block {connect(self.anvil.url).eth.block_number}")

    def reorg(self, patience: float = 60.0) -> None:
        """Replace the last few blocks (Anvil's snapshot and revert) once they hold some worker's
        move, so the reorganisation drops real moves: whatever those blocks held is gone from the
        chain and must be sent again by whoever still needs it."""
        w3 = connect(self.anvil.url)
        workers = {spec.address for spec in WORKERS}
        started = time.monotonic()
        while True:
            snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
            before = w3.eth.block_number
            time.sleep(self.rng.uniform(2.0, 4.0))
            head = w3.eth.block_number
            dropped = [tx for n in range(before + 1, head + 1)
                       for tx in w3.eth.get_block(n, full_transactions=True)["transactions"] if tx["from"] in workers]
            if dropped or time.monotonic() - started > patience:
                break
        response = w3.provider.make_request("evm_revert", [snapshot])
        assert response.get("result") is True, response
        mine_every(self.anvil.url, 1)
        self.note(f"reorganisation: blocks {before + 1}-{head} replaced, dropping {len(dropped)} worker move(s)")

    # ── workers ─────────────────────────────────────────────────────
    def launch(self, spec: WorkerSpec) -> None:
        home = self.root / "homes" / spec.name
        env = {**os.environ, "DTM_RPC": self.anvil.url, "DTM_HOME": str(home),
               "DTM_DEPLOYMENTS_DIR": str(self.root / "deployments"), "IPFS_API": self.server.url,
               # a node restart loses its pool: a move not mined after this long is sent again (bumped)
               "DTM_BUMP_AFTER": "5"}
        path = self.root / "logs" / f"{spec.name}.log"
        log = open(path, "a")
        offset = path.stat().st_size
        argv = [sys.executable, "-m", "offchain.cli", "--dev-account", str(spec.account), *spec.argv,
                "--poll", "0.3", "--threads", "1"]
        popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        kills = self.processes[spec.name].kills if spec.name in self.processes else 0
        self.processes[spec.name] = Process(spec, popen, path, offset, time.time(), kills=kills)

    def start_workers(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        for spec in WORKERS:
            self.launch(spec)

    def kill_and_restart(self, name: str) -> None:
        with self.lock:
            process = self.processes[name]
            process.popen.send_signal(signal.SIGKILL)
            process.popen.wait(10)
            process.kills += 1
            if process.ready_at is None:  # it never came up: the span it was down for goes on
                process.ready_at = time.time()
                self.watch()
            self.down[name].append([time.time(), None])
            self.note(f"SIGKILL {name}")
        time.sleep(self.rng.uniform(*self.plan.down_for))
        with self.lock:
            self.launch(process.spec)
            self.note(f"restarted {name}")

    def watch(self) -> None:
        """Close the down span of every worker now following the market again."""
        with self.lock:
            for name, process in self.processes.items():
                spans = self.down[name]
                if not spans:
                    spans.append([process.started, None])
                if spans[-1][1] is None and process.ready_for() > 0:
                    spans[-1][1] = process.ready_at

    def was_down(self, name: str, start: float, end: float) -> bool:
        """Whether worker `name` was not following the market at some moment of [start, end]."""
        self.watch()
        return any(a <= end and (b is None or b >= start) for a, b in self.down[name])

    def crashed(self) -> list[str]:
        """Workers that exited on their own (none should)."""
        with self.lock:
            return [name for name, p in self.processes.items() if p.popen.poll() is not None]

    def stop_workers(self) -> None:
        with self.lock:
            for process in self.processes.values():
                if process.popen.poll() is None:
                    process.popen.send_signal(signal.SIGTERM)
            for process in self.processes.values():
                try:
                    process.popen.wait(20)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait(5)

    def close(self) -> None:
        self.stop_workers()
        if self.server is not None:
            self.server.close()
        if self.anvil is not None:
            self.anvil.stop()

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.root / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # ── tasks ───────────────────────────────────────────────────────
    def publish(self, steps: int) -> PublishedTask:
        return Harness.publish(self.store(), steps=steps, k=4, hidden=16)

    def post(self, published: PublishedTask, kind: str) -> int:
        """Post one task; the chain or the store may be down a moment, so each part is retried."""
        expires_in = 6 if kind == "brief" else self.plan.expires_in

        def attempt() -> int | None:
            try:
                submitter = Submitter(market=self.market(SUBMITTER), store=self.store(), home=self.root / "submitter")
                return submitter.post(published, payment=ETHER, solver_stake=ETHER, expires_in=expires_in,
                                      train_window=self.plan.train_window)
            except (ChainError, StorageError, ConnectionError, OSError) as exc:
                self.note(f"posting failed ({type(exc).__name__}: {exc}); retrying")
                return None

        task_id = wait_for(attempt, 60, "a post", interval=1.0)
        self.note(f"posted task {task_id} ({kind})")
        if kind == "cancel":
            time.sleep(self.rng.uniform(0.0, 1.5))
            try:
                self.market(SUBMITTER).transact("cancel", task_id)
                self.note(f"cancelled task {task_id}")
            except TransactionReverted:
                self.note(f"task {task_id} was claimed before its cancel")
        return task_id


class Chaos(threading.Thread):
    """Kills a random worker with SIGKILL every `plan.kill_every` seconds and restarts it; a worker
    that has followed the market for less than one window since its last start is spared, so no
    window of a party sees it down twice."""

    def __init__(self, soak: Soak):
        super().__init__(daemon=True, name="chaos")
        self.soak, self.stopping = soak, threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        soak, plan = self.soak, self.soak.plan
        try:
            next_kill = time.monotonic() + soak.rng.uniform(*plan.kill_every)
            while not self.stopping.wait(0.5):
                soak.watch()
                if time.monotonic() < next_kill:
                    continue
                next_kill = time.monotonic() + soak.rng.uniform(*plan.kill_every)
                with soak.lock:
                    names = sorted(n for n, p in soak.processes.items() if p.ready_for() >= soak.window)
                if names:
                    soak.kill_and_restart(soak.rng.choice(names))
        except BaseException as exc:  # reported by the test
            self.error = exc


# ── what the chain says at the end ──────────────────────────────────
def all_terminal(market: Market, task_ids: list[int]) -> bool:
    return all(market.task(t).state in TERMINAL_STATES for t in task_ids)


def _tx_logs(market: Market, tx_hash: bytes) -> list[tuple[str, Any]]:
    receipt = market.w3.eth.get_transaction_receipt(tx_hash)
    found = []
    for event in market.contract.events:
        for log in event().process_receipt(receipt, errors=DISCARD):
            found.append((log["event"], log["args"], log["logIndex"]))
    return [(name, args) for name, args, _ in sorted(found, key=lambda item: item[2])]


def _sum(events: list[Any], field_name: str = "amount") -> int:
    return sum(e["args"][field_name] for e in events)


def check_books(market: Market, task_ids: list[int]) -> dict[str, Any]:
    """Every accounting invariant of docs/protocol.md §7 that holds once every task is terminal,
    checked from chain state and the chain's events; returns figures for the report."""
    start = market.deployment.block
    events = {name: market.events(name, start) for name in (
        "Deposited", "Credited", "Withdrawn", "StakeWithdrawn", "StakeSlashed", "JackpotFunded", "JackpotPaid")}
    balance = market.w3.eth.get_balance(market.deployment.market)
    totals = {name: market.call(name) for name in ("total_escrow", "total_staked", "total_credits", "pool")}
    # the ledger owes exactly what the market holds
    assert balance == market.call("liabilities") == sum(totals.values()), (balance, totals)
    assert totals["total_escrow"] == 0, "terminal tasks hold no escrow"
    for task_id in task_ids:
        task = market.task(task_id)
        assert task.state in TERMINAL_STATES and task.escrow == task.tax == 0, task
    # every account: nothing locked, its stake is what it deposited less its slashes, its credits
    # what it was credited less what it withdrew
    accounts = {e["args"]["account"] for name in ("Deposited", "Credited") for e in events[name]}
    staked = credits = 0
    for account in accounts:
        bonded, locked, unbonding, _, _ = market.call("accounts", account)
        assert locked == 0, f"{account} still has {locked} wei locked"
        mine = {name: [e for e in found if e["args"].get("account") == account] for name, found in events.items()}
        assert bonded + unbonding == (_sum(mine["Deposited"]) - _sum(mine["StakeSlashed"])
                                      - _sum(mine["StakeWithdrawn"])), account
        credit = market.call("credits", account)
        assert credit == _sum(mine["Credited"]) - _sum(mine["Withdrawn"]), account
        staked, credits = staked + bonded + unbonding, credits + credit
    assert (staked, credits) == (totals["total_staked"], totals["total_credits"])
    assert totals["pool"] == _sum(events["JackpotFunded"]) - _sum(events["JackpotPaid"])
    # every wei in: the value of every successful transaction to the market; every wei out: withdrawals
    paid_in = 0
    for number in range(start, market.block_number() + 1):
        for tx in market.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["to"] == market.deployment.market and tx["value"]:
                if market.w3.eth.get_transaction_receipt(tx["hash"])["status"] == 1:
                    paid_in += tx["value"]
    paid_out = _sum(events["Withdrawn"]) + _sum(events["StakeWithdrawn"])
    assert balance == paid_in - paid_out, (balance, paid_in, paid_out)
    # the dispute game holds only what it owes
    arbiter = market.arbiter
    held = arbiter.functions.fees_held().call()
    owed = sum(arbiter.functions.credits(a).call() for a in accounts)
    assert held == 0 and market.w3.eth.get_balance(arbiter.address) == owed
    return {"balance": balance, **totals, "paid_in": paid_in, "paid_out": paid_out}


def check_parties(market: Market, task_ids: list[int], soak: Soak) -> dict[str, Any]:
    """Honest solvers paid for every claim and never slashed; the cheater slashed for every claim and
    never paid; the whistleblower never slashed; a verifier that accepted a proof the whistleblower
    proved wrong slashed for it: the lazy one, or the honest one where its sample of segments
    missed the cheat (the protocol's rule: a verifier answers for what it accepts), and the honest
    verifier slashed for nothing else.

    The protocol punishes a party that is offline when its move is due, whoever it is: a loss of an
    honest party (or a cheat that went through) is put down to the chaos, and listed as such, only
    where the party that had to move was not following the market (killed, or still starting) at
    some moment between its first move on the task and the loss. Everywhere else it fails the test."""
    start = market.deployment.block
    by_address = {spec.address: spec.name for spec in WORKERS}
    honest = {w.address for w in HONEST_SOLVERS}
    claims = market.events("TaskClaimed", start)
    finalised = {e["args"]["task_id"]: e for e in market.events("TaskFinalised", start)}
    outcome: Counter[str] = Counter(market.task(t).state.name.lower() for t in task_ids)
    stamp = {}

    def time_of(event: Any) -> int:
        number = event["blockNumber"]
        if number not in stamp:
            stamp[number] = market.w3.eth.get_block(number)["timestamp"]
        return stamp[number]

    # who had a part in each task, and since when
    involved: dict[tuple[str, int], int] = {}
    for name, role in (("TaskClaimed", "solver"), ("VerifierDrawn", "verifier"), ("Challenged", "challenger")):
        for event in market.events(name, start):
            key = (event["args"][role], event["args"]["task_id"])
            involved.setdefault(key, time_of(event))
    excused: list[str] = []

    def excuse(address: str, task_id: int, since: int, until: int, what: str) -> bool:
        if soak.was_down(by_address[address], since - 1, until + 1):
            excused.append(f"task {task_id}: {what} ({by_address[address]} was down meanwhile)")
            return True
        return False

    # each transaction that slashed someone, with the tasks it touched
    slashes = defaultdict(list)  # account -> [(task ids, amount, time)]
    for event in market.events("StakeSlashed", start):
        logs = _tx_logs(market, event["transactionHash"])
        touched = {args["task_id"] for name, args in logs if "task_id" in args}
        slashes[event["args"]["account"]].append((touched, event["args"]["amount"], time_of(event)))
    # a whistleblower that proved a proof wrong took the accepting verifier's bond too (§6); the
    # honest verifier replays a sample of segments, so it too may accept a cheat: then it pays
    challenged = {e["args"]["dispute_id"]: e["args"] for e in market.events("Challenged", start)}
    proven_by_whistle, missed = 0, set()
    for end in market.arbiter.events.DisputeEnded().get_logs(from_block=start):
        challenge = challenged[end["args"]["dispute_id"]]
        if challenge["challenger"] != WHISTLEBLOWER.address or end["args"]["solver_won"] or end["args"]["reason"] == 1:
            continue  # only a proof (not a timeout) says the accepted proof was wrong
        task_id = end["args"]["task_id"]
        [accepted] = [e for e in market.events("ProofAccepted", start, task_id=task_id)
                      if e["blockNumber"] <= end["blockNumber"]][-1:]
        proven_by_whistle += 1
        verifier = accepted["args"]["verifier"]
        assert any(task_id in touched for touched, _, _ in slashes[verifier]), (
            f"task {task_id}: {by_address[verifier]} accepted a proof proven wrong and kept its bond")
        if verifier == VERIFIER.address:
            missed.add(task_id)
    for address in (*honest, VERIFIER.address, WHISTLEBLOWER.address):
        for touched, amount, when in slashes[address]:
            [task_id] = touched
            if address == VERIFIER.address and task_id in missed:
                continue  # its sample missed the cheat the whistleblower proved
            since = involved.get((address, task_id), when)
            assert excuse(address, task_id, since, when, f"{by_address[address]} slashed {amount} wei"), (
                f"honest {by_address[address]} slashed {amount} wei on task {task_id} while following the market")
    paid = Counter()
    for claim in claims:
        task_id, solver = claim["args"]["task_id"], claim["args"]["solver"]
        if solver not in honest:
            continue
        done = finalised.get(task_id)
        if done is not None and done["args"]["solver"] == solver:
            credited = [args for name, args in _tx_logs(market, done["transactionHash"])
                        if name == "Credited" and args["account"] == solver]
            assert credited and credited[0]["amount"] == done["args"]["solver_payment"] > 0
            paid[by_address[solver]] += 1
        else:  # its claim did not end in its payment: it was slashed for it (and excused above)
            assert any(task_id in touched and when >= time_of(claim) for touched, _, when in slashes[solver]), (
                f"task {task_id}: {by_address[solver]}'s claim ended neither paid nor slashed")
    cheats = [c for c in claims if c["args"]["solver"] == CHEAT.address]
    slashed_for = sorted(t for touched, _, _ in slashes[CHEAT.address] for t in touched)
    assert all(amount == ETHER for _, amount, _ in slashes[CHEAT.address])
    for claim in cheats:
        task_id = claim["args"]["task_id"]
        if task_id in slashed_for:
            slashed_for.remove(task_id)
            continue
        # a cheat that went through: only past a lazy verifier, with the whistleblower down
        done = finalised.get(task_id)
        assert done is not None and done["args"]["solver"] == CHEAT.address, f"task {task_id}: cheat neither paid nor slashed"
        [accepted] = [e for e in market.events("ProofAccepted", start, task_id=task_id)
                      if e["blockNumber"] <= done["blockNumber"]][-1:]
        assert excuse(WHISTLEBLOWER.address, task_id, time_of(accepted), accepted["args"]["deadline"],
                      "a cheat went through"), f"task {task_id}: a cheat was paid while the whistleblower watched"
    assert not slashed_for, f"the cheater was slashed on tasks it never claimed: {slashed_for}"
    return {"outcomes": dict(outcome), "claims": len(claims), "cheats": len(cheats), "paid": dict(paid),
            "whistle_proofs": proven_by_whistle, "lazy_slashes": len(slashes[LAZY.address]),
            "honest_verifier_sample_missed": sorted(missed),
            "put_down_to_chaos": excused}


# moves that, from one account, may land more than once with the same calldata
REPEATABLE = {"draw", "expire", "withdraw", "deposit", "accept"}


def check_no_move_sent_twice(market: Market) -> dict[str, int]:
    """No account sends a move that must be unique again (same target and calldata) once it has
    succeeded: a second send counts whether it reverted or not, while a send after one that
    reverted is a retry (a reorganisation can undo what a move needs, and the worker moves again
    when it holds once more). No `accept` beyond the draws that called that verifier. Returns the
    count of worker transactions, of retries and of those that reverted on chain (a keeper that
    lost a race), by function."""
    start = market.deployment.block
    workers = {spec.address for spec in WORKERS}
    contracts = {c.address: c for c in (market.contract, market.arbiter, market.checker, market.programs, market.program_reducer) if c}
    seen: dict[tuple[str, str, bytes], list[int]] = defaultdict(list)
    names: dict[tuple[str, str, bytes], str] = {}
    reverted = Counter()
    mined = 0
    for number in range(start, market.block_number() + 1):
        for tx in market.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] not in workers or tx["to"] not in contracts:
                continue
            mined += 1
            key = (tx["from"], tx["to"], bytes(tx["input"]))
            status = market.w3.eth.get_transaction_receipt(tx["hash"])["status"]
            seen[key].append(status)
            if key not in names:
                try:
                    names[key] = contracts[tx["to"]].decode_function_input(tx["input"])[0].fn_name
                except ValueError:
                    names[key] = "?"
            if status != 1:
                reverted[names[key]] += 1
    unique = {key: statuses for key, statuses in seen.items() if names[key] not in REPEATABLE}
    twice = {(k[0][:8], names[k]): statuses for k, statuses in unique.items() if 1 in statuses[:-1]}
    assert not twice, f"moves sent twice: {twice}"
    retried = Counter(names[k] for k, statuses in unique.items() for _ in statuses[1:])
    for verifier in (VERIFIER.address, LAZY.address):
        drawn = Counter(e["args"]["task_id"] for e in market.events("VerifierDrawn", start, verifier=verifier))
        accepted = Counter(e["args"]["task_id"] for e in market.events("ProofAccepted", start, verifier=verifier))
        assert all(accepted[t] <= drawn[t] for t in accepted), (verifier, accepted, drawn)
    return {"worker_transactions": mined, **{f"retried_{name}": n for name, n in retried.items()},
            **{f"reverted_{name}": n for name, n in reverted.items()}}
