"""A typed web3 client of the deployed market, shared by every worker and the CLI.

Transactions are simulated before they are signed, so a revert surfaces as a
`TransactionReverted` carrying the contract's reason and nothing is sent; a dead
RPC is retried with exponential back-off before `RPCUnavailable` is raised.

Sending (`Market.transact`, per `TxPolicy`):

* one `NonceManager` per chain and account in a process, so concurrent moves of
  one account never share a nonce, and a nonce whose transaction never left is reused;
* EIP-1559 fees (legacy gas price where the chain has no base fee); a transaction
  not mined within `bump_after` seconds is replaced, same nonce and payload, with
  fees `bump_percent` higher, at most `max_bumps` times;
* a move counts as done once its block has `confirmations` blocks on top (itself
  included); if a reorganisation drops it meanwhile, or the node loses it (a restart
  empties its pool), the same signed transaction is broadcast again: one nonce, so it can
  never execute twice;
* a move waiting behind an empty nonce (an earlier move of the account that a
  reorganisation dropped after its sender counted it done) has that earlier move's own
  signed transaction broadcast again, so no nonce stays empty and nothing waits forever.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlparse

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.logs import DISCARD

from offchain.chain.deployment import Deployment, DeploymentNotFound, load_abi
from offchain.chain.suite import Role, TaskState, Terms
from offchain.log import get_logger

log = get_logger(__name__)
T = TypeVar("T")


class ChainError(Exception):
    """Base class of every chain-side failure."""


class TransactionReverted(ChainError, RuntimeError):
    def __init__(self, action: str, reason: str):
        super().__init__(f"{action} reverted: {reason}")
        self.action, self.reason = action, reason


class RPCUnavailable(ChainError, ConnectionError):
    """The RPC endpoint did not answer after every retry."""


def with_retries(action: str, fn: Callable[[], T], *, attempts: int = 6, first_delay: float = 0.25) -> T:
    """Run `fn`, retrying connection failures with exponential back-off."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (ConnectionError, TimeoutError, OSError) as exc:
            if attempt == attempts:
                raise RPCUnavailable(f"{action}: RPC unreachable after {attempts} attempts ({exc})") from exc
            log.warning("%s: RPC error (%s); retrying in %.2fs", action, exc, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def connect(rpc_url: str, *, timeout: float = 10.0) -> Web3:
    """An HTTP(S) JSON-RPC connection that answered once; a malformed URL fails at once."""
    parsed = urlparse(rpc_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ChainError(f"RPC URL {rpc_url!r} is not an http:// or https:// URL")
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    with_retries(f"connect to {rpc_url}", lambda: w3.eth.chain_id)
    return w3


@dataclass(frozen=True)
class TxPolicy:
    """How `Market.transact` sends: confirmations, fee bumps and how long to wait."""

    confirmations: int = 1       # blocks a move's block needs on top, itself included
    bump_after: float = 30.0     # seconds without a receipt before the fees are raised
    bump_percent: int = 25       # each replacement pays this much more (nodes ask >= 10 %)
    max_bumps: int = 3
    timeout: float = 300.0       # then give up: ChainError, the nonce is released

    @classmethod
    def from_env(cls) -> TxPolicy:
        """`DTM_CONFIRMATIONS` and `DTM_BUMP_AFTER` override the defaults."""
        try:
            return cls(confirmations=int(os.environ.get("DTM_CONFIRMATIONS", "1")),
                       bump_after=float(os.environ.get("DTM_BUMP_AFTER", "30")))
        except ValueError as exc:
            raise ChainError(f"DTM_CONFIRMATIONS / DTM_BUMP_AFTER: {exc}") from None

    def __post_init__(self) -> None:
        if self.confirmations < 1 or self.bump_after <= 0 or self.bump_percent < 10 or self.timeout <= 0:
            raise ChainError("tx policy: confirmations >= 1, bump_after > 0, bump_percent >= 10, timeout > 0")


class NonceManager:
    """Nonces of one account on one chain, shared by every `Market` of this process.

    The next nonce is the chain's pending count, or one past the highest nonce this process has
    in flight if that is higher (the node may not have seen the last broadcast yet). A nonce is
    in flight from its broadcast until its move is done or abandoned. The signed transactions of
    the last `RECENT` moves done are kept, by nonce: a reorganisation may yet drop one of them.
    """

    RECENT = 64
    _all: dict[tuple[int, bytes, str], NonceManager] = {}
    _all_lock = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: set[int] = set()
        self.done: dict[int, bytes] = {}

    @classmethod
    def of(cls, chain: tuple[int, bytes], address: str) -> NonceManager:
        """``chain``: its id and genesis hash, so a chain started afresh with the same id (a local
        node restarted) never inherits the nonces this process had in flight on the old one."""
        with cls._all_lock:
            return cls._all.setdefault((*chain, address), cls())

    @classmethod
    def forget(cls, chain: tuple[int, bytes]) -> None:
        """Drop what this process knows of ``chain``'s nonces: a chain loaded afresh from the
        snapshot that gave it its genesis (as each test market is) is a new chain, and a move left
        in flight on the last one would otherwise hold back the next nonce forever."""
        with cls._all_lock:
            for key in [key for key in cls._all if key[:2] == chain]:
                del cls._all[key]

    def next(self, pending: int) -> int:
        """Call with `lock` held; add the nonce to `in_flight` once its transaction is broadcast."""
        return max([pending, *(n + 1 for n in self.in_flight)])

    def release(self, nonce: int, raw: bytes | None = None) -> None:
        """The move of `nonce` is over; `raw`: the signed transaction that was mined, when it was."""
        with self.lock:
            self.in_flight.discard(nonce)
            if raw is not None:
                self.done[nonce] = raw
                for old in sorted(self.done)[: -self.RECENT]:
                    del self.done[old]

    def dropped_before(self, nonce: int, mined: int) -> list[bytes]:
        """The signed transactions of this process's done moves whose nonces lie between the
        account's `mined` count and `nonce`: a reorganisation dropped them, and `nonce` waits."""
        with self.lock:
            return [self.done[n] for n in range(mined, nonce) if n in self.done and n not in self.in_flight]


@dataclass
class _Sent:
    """One move on the wire: its nonce, and every signed version of it (fee bumps)."""

    nonce: int
    versions: list[tuple[bytes, bytes]] = field(default_factory=list)  # (tx hash, raw bytes)
    checked: float = 0.0  # when it was first broadcast or `Market._keep_alive` last looked for it

    def raw_of(self, tx_hash: bytes) -> bytes:
        return next((raw for h, raw in self.versions if h == bytes(tx_hash)), self.versions[-1][1])


@dataclass
class _Unmined:
    """A move `send` sent and `receipt` has not seen mined: what it needs to raise its fees."""

    name: str
    sent: _Sent
    tx: dict
    nonces: NonceManager
    last_send: float
    bumps: int = 0


@dataclass(frozen=True)
class TaskView:
    """One task as the chain holds it (field order of `Market.Task`)."""

    task_id: int
    state: TaskState
    submitter: str
    spec_hash: bytes
    escrow: int
    tax: int
    solver_stake: int
    terms_id: int
    expires: int
    train_window: int
    checkpoint_interval: int
    checkpoints: int
    solver: str
    secret_hash: bytes
    entropy: bytes
    round: int
    deadline: int
    proof_root: bytes
    verifier: str
    challenger: str
    dispute_id: int
    draw_block: int
    forced_declared: bool


#: the dispute game's checkers a deployment of `Arbitration` holds (scripts/deploy.py)
GAME_CHECKERS = ("ProofChecker", "ProgramChecker", "ProgramLinkChecker", "ProgramReductionChecker")


class Market:
    """The market contract, seen by one account (or read-only without one)."""

    def __init__(self, w3: Web3, deployment: Deployment, account: LocalAccount | None = None,
                 policy: TxPolicy | None = None):
        self.w3, self.deployment, self.account = w3, deployment, account
        self.policy = policy or TxPolicy.from_env()
        self._chain: tuple[int, bytes] | None = None  # id and genesis hash
        self._unmined: dict[bytes, _Unmined] = {}  # sent by `send`, not yet seen mined
        self.contract = w3.eth.contract(address=deployment.market, abi=load_abi("Market"))
        self.arbiter = w3.eth.contract(address=deployment.arbiter, abi=load_abi(deployment.arbiter_kind))
        # the game's checkers (None under another arbiter)
        self.checker = self._deployed("ProofChecker")
        self.programs = self._deployed("ProgramChecker")
        self.program_links = self._deployed("ProgramLinkChecker")
        self.program_reducer = self._deployed("ProgramReductionChecker")
        missing = [name for name in GAME_CHECKERS if name not in deployment.contracts]
        if deployment.arbiter_kind == "Arbitration" and missing:
            raise DeploymentNotFound(f"the deployment lacks the game's {', '.join(missing)} (it predates them): "
                                     "deploy the suite again (`dtm node up` on a fresh chain, or `ape run deploy`)")

    def _deployed(self, name: str) -> Any:
        address = self.deployment.contracts.get(name)
        return self.w3.eth.contract(address=address, abi=load_abi(name)) if address else None

    # ── reads ───────────────────────────────────────────────────────
    def call(self, name: str, *args: Any) -> Any:
        return with_retries(name, lambda: getattr(self.contract.functions, name)(*args).call())

    def read(self, contract: Any, name: str, *args: Any) -> Any:
        """A view of `contract`; a struct comes back as a dict keyed by field name."""
        fn = getattr(contract.functions, name)(*args)
        value = with_retries(name, fn.call)
        outputs = fn.abi["outputs"]
        if len(outputs) == 1 and outputs[0].get("components"):
            return {c["name"]: v for c, v in zip(outputs[0]["components"], value)}
        return value

    def task(self, task_id: int) -> TaskView:
        raw = self.call("tasks", task_id)
        return TaskView(task_id, TaskState(raw[0]), *raw[1:])

    def terms(self, terms_id: int) -> Terms:
        return Terms(*self.call("published", terms_id))

    def ether(self, address: str) -> int:
        """The wei an account holds itself, outside the market (what pays its gas)."""
        return with_retries("balance", lambda: self.w3.eth.get_balance(address))

    def now(self) -> int:
        """The time the next block will carry: on an idle auto-mining chain the
        latest block is stale, on a chain whose clock was moved it is ahead."""
        latest = with_retries("block", lambda: self.w3.eth.get_block("latest")["timestamp"])
        return max(latest, int(time.time()))

    def block_number(self) -> int:
        return with_retries("block number", lambda: self.w3.eth.block_number)

    def events(self, name: str, from_block: int, to_block: int | str = "latest", **filters: Any) -> list[Any]:
        event = getattr(self.contract.events, name)

        def logs() -> list[Any]:
            try:
                return event.get_logs(from_block=from_block, to_block=to_block, argument_filters=filters or None)
            except Web3RPCError as exc:  # e.g. a range past the head of a chain a reorganisation just shortened
                raise ChainError(f"{name} logs: {exc}") from None

        return with_retries(f"{name} logs", logs)

    # ── writes ──────────────────────────────────────────────────────
    def transact(self, name: str, *args: Any, value: int = 0, contract: Any = None) -> Any:
        """Simulate, sign, send and wait until the move is done (`TxPolicy`); returns the receipt."""
        sent, tx, nonces = self._send(name, args, value, contract)
        receipt = None
        try:
            receipt = self._until_done(name, sent, tx, nonces)
        finally:
            nonces.release(sent.nonce, receipt and sent.raw_of(receipt["transactionHash"]))
        if receipt["status"] != 1:
            raise TransactionReverted(name, "reverted on chain after a successful simulation")
        log.debug("%s mined in block %d (gas %d)", name, receipt["blockNumber"], receipt["gasUsed"])
        return receipt

    def send(self, name: str, *args: Any, value: int = 0, contract: Any = None) -> bytes:
        """Simulate, sign and send one call without waiting for it; returns the transaction hash.
        Its nonce stays taken until `receipt` sees it mined, and `receipt` raises its fees while
        it is not (`TxPolicy`)."""
        sent, tx, nonces = self._send(name, args, value, contract)
        tx_hash = sent.versions[0][0]
        self._unmined[tx_hash] = _Unmined(name, sent, tx, nonces, time.monotonic())
        return tx_hash

    def receipt(self, tx_hash: bytes) -> Any | None:
        """The receipt of a transaction `send` sent (or of a version of it with raised fees), or
        None while none is mined; meanwhile the move is kept alive (broadcast again if the node
        lost it, and what it waits behind too) and, `bump_after` seconds without a receipt, its
        fees are raised."""
        waiting = self._unmined.get(bytes(tx_hash))
        if waiting is None:
            try:
                return with_retries("receipt", lambda: self.w3.eth.get_transaction_receipt(tx_hash))
            except TransactionNotFound:
                return None
        receipt = with_retries(waiting.name, lambda: self._receipt(waiting.sent))
        if receipt is not None:
            del self._unmined[bytes(tx_hash)]
            waiting.nonces.release(waiting.sent.nonce, waiting.sent.raw_of(receipt["transactionHash"]))
            return receipt
        if self._keep_alive(waiting.name, waiting.nonces, waiting.sent):
            waiting.last_send = time.monotonic()
        elif time.monotonic() - waiting.last_send >= self.policy.bump_after and waiting.bumps < self.policy.max_bumps:
            waiting.bumps += 1
            self._bump(waiting.name, waiting.sent, waiting.tx, waiting.bumps)
            waiting.last_send = time.monotonic()
        return None

    def _bump(self, name: str, sent: _Sent, tx: dict, bumps: int) -> None:
        """Broadcast `sent` again with its fees raised `bumps` times (same nonce: whichever version
        is mined first is the move)."""
        log.info("%s: not mined after %.0f s; raising its fees (%d of %d)", name, self.policy.bump_after, bumps,
                 self.policy.max_bumps)
        signed = self.account.sign_transaction({**tx, **self._fees(bumps), "nonce": sent.nonce})
        if self._send_raw(name, signed.raw_transaction):
            sent.versions.append((bytes(signed.hash), bytes(signed.raw_transaction)))

    def _send(self, name: str, args: tuple, value: int, contract: Any) -> tuple[_Sent, dict, NonceManager]:
        """Simulate, then sign and broadcast with the account's next nonce (marked in flight)."""
        if self.account is None:
            raise ChainError(f"{name}: no account configured to sign with")
        fn = getattr((contract or self.contract).functions, name)(*args)
        sender = self.account.address
        try:
            # simulated in the block the call will land in, not the one already mined
            gas = with_retries(name, lambda: fn.estimate_gas({"from": sender, "value": value}, "pending"))
        except ContractLogicError as exc:
            raise TransactionReverted(name, _reason(exc)) from None
        tx = fn.build_transaction({"from": sender, "value": value, "gas": gas * 5 // 4 + 20_000, "nonce": 0})
        tx.update(self._fees())
        if self._chain is None:
            self._chain = with_retries("chain id", lambda: (self.w3.eth.chain_id,
                                                            bytes(self.w3.eth.get_block(0)["hash"])))
        nonces = NonceManager.of(self._chain, sender)
        with nonces.lock:
            pending = with_retries("nonce", lambda: self.w3.eth.get_transaction_count(sender, "pending"))
            sent = _Sent(nonces.next(pending))
            self._broadcast(name, sent, {**tx, "nonce": sent.nonce})
            nonces.in_flight.add(sent.nonce)
        return sent, tx, nonces

    def _fees(self, bumps: int = 0) -> dict[str, int]:
        """EIP-1559 fees (twice the base fee plus the tip), or a legacy gas price; each bump
        multiplies them by (1 + bump_percent / 100)."""
        factor = (100 + self.policy.bump_percent) ** bumps

        def scaled(wei: int) -> int:
            return -(-wei * factor // 100 ** bumps)

        base = with_retries("block", lambda: self.w3.eth.get_block("latest")).get("baseFeePerGas")
        if base is None:
            return {"gasPrice": scaled(with_retries("gas price", lambda: self.w3.eth.gas_price))}
        tip = with_retries("tip", lambda: self.w3.eth.max_priority_fee)
        return {"maxPriorityFeePerGas": scaled(tip), "maxFeePerGas": scaled(2 * base + tip)}

    def _broadcast(self, name: str, sent: _Sent, tx: dict) -> None:
        signed = self.account.sign_transaction(tx)
        tx_hash = with_retries(name, lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction))
        sent.versions.append((bytes(tx_hash), bytes(signed.raw_transaction)))
        sent.checked = time.monotonic()

    def _receipt(self, sent: _Sent) -> Any | None:
        for tx_hash, _ in sent.versions:
            try:
                receipt = self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                continue
            if receipt is not None and receipt.get("blockNumber") is not None:
                return receipt
        return None

    def _until_done(self, name: str, sent: _Sent, tx: dict, nonces: NonceManager) -> Any:
        """Wait for a receipt (keeping the move alive and raising its fees while none comes), then
        for the confirmations."""
        policy = self.policy
        start = last_send = time.monotonic()
        bumps = 0
        while time.monotonic() - start < policy.timeout:
            receipt = with_retries(name, lambda: self._receipt(sent))
            if receipt is not None:
                if self._confirmed(receipt):
                    return receipt
            elif self._keep_alive(name, nonces, sent):
                last_send = time.monotonic()
            elif time.monotonic() - last_send >= policy.bump_after and bumps < policy.max_bumps:
                bumps += 1
                self._bump(name, sent, tx, bumps)
                last_send = time.monotonic()
            time.sleep(0.1)
        raise ChainError(f"{name}: nonce {sent.nonce} not done in {policy.timeout:.0f} s "
                         f"({len(sent.versions)} version(s) sent); check the node and the account's funds")

    def _keep_alive(self, name: str, nonces: NonceManager, sent: _Sent) -> bool:
        """For a move not mined, at most once a second (from a second after its broadcast): if it waits behind nonces of this account
        that a reorganisation emptied, broadcast the moves that were mined there again; if the node
        knows no version of it (a reorganisation dropped it, or a restart emptied the pool),
        broadcast it again. True when it was broadcast again."""
        if time.monotonic() - sent.checked < 1.0:
            return False
        sent.checked = time.monotonic()
        sender = self.account.address
        mined = with_retries("nonce", lambda: self.w3.eth.get_transaction_count(sender, "latest"))
        for raw in nonces.dropped_before(sent.nonce, mined):
            if self._send_raw(name, raw):
                log.warning("%s: an earlier move of this account was dropped by a chain reorganisation; "
                            "broadcasting it again", name)
        if mined > sent.nonce or any(self._known(tx_hash) for tx_hash, _ in sent.versions):
            return False
        log.warning("%s: dropped by a chain reorganisation or lost by the node; broadcasting it again", name)
        self._send_raw(name, sent.versions[-1][1])
        return True

    def _known(self, tx_hash: bytes) -> bool:
        try:
            with_retries("transaction", lambda: self.w3.eth.get_transaction(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def _send_raw(self, name: str, raw: bytes) -> bool:
        """Broadcast signed bytes; False where the node refuses them (an earlier version of the
        move was mined meanwhile, or the node already has them)."""
        try:
            with_retries(name, lambda: self.w3.eth.send_raw_transaction(raw))
            return True
        except (Web3RPCError, ValueError) as exc:
            log.debug("%s: node refused a broadcast (%s)", name, exc)
            return False

    def _confirmed(self, receipt: Any) -> bool:
        head = with_retries("block number", lambda: self.w3.eth.block_number)
        return head - receipt["blockNumber"] + 1 >= self.policy.confirmations

    def deposit(self, roles: Role, amount: int) -> Any:
        return self.transact("deposit", int(roles), value=amount)

    def create_task(self, *, spec_cid: str, commitments: tuple, payment: int, solver_stake: int,
                    expires: int, train_window: int) -> int:
        """Post a task; `commitments` is `TrainingTask.commitments()`, which the chain hashes to
        the spec hash and reads the schedule from."""
        receipt = self.transact("create_task", spec_cid, commitments, solver_stake, expires, train_window,
                                value=payment)
        [created] = self.contract.events.TaskCreated().process_receipt(receipt, errors=DISCARD)
        return created["args"]["task_id"]

    def challenge(self, task_id: int, proof_root: bytes, segment: int) -> int:
        receipt = self.transact("challenge", task_id, proof_root, segment)
        [challenged] = self.contract.events.Challenged().process_receipt(receipt, errors=DISCARD)
        return challenged["args"]["dispute_id"]


def _reason(exc: ContractLogicError) -> str:
    message = exc.message or str(exc)
    return message.removeprefix("execution reverted: ").strip()
