"""A typed web3 client of the deployed market, shared by every worker and the CLI.

Transactions are simulated before they are signed, so a revert surfaces as a
`TransactionReverted` carrying the contract's reason and nothing is sent; a dead
RPC is retried with exponential back-off before `RPCUnavailable` is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound
from web3.logs import DISCARD

from offchain.chain.deployment import Deployment, load_abi
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


class Market:
    """The market contract, seen by one account (or read-only without one)."""

    def __init__(self, w3: Web3, deployment: Deployment, account: LocalAccount | None = None):
        self.w3, self.deployment, self.account = w3, deployment, account
        self.contract = w3.eth.contract(address=deployment.market, abi=load_abi("Market"))
        self.arbiter = w3.eth.contract(address=deployment.arbiter, abi=load_abi(deployment.arbiter_kind))
        checker = deployment.contracts.get("ProofChecker")
        self.checker = w3.eth.contract(address=checker, abi=load_abi("ProofChecker")) if checker else None
        reducer = deployment.contracts.get("ReductionChecker")
        self.reducer = w3.eth.contract(address=reducer, abi=load_abi("ReductionChecker")) if reducer else None

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

    def now(self) -> int:
        """The time the next block will carry: on an idle auto-mining chain the
        latest block is stale, on a chain whose clock was moved it is ahead."""
        latest = with_retries("block", lambda: self.w3.eth.get_block("latest")["timestamp"])
        return max(latest, int(time.time()))

    def block_number(self) -> int:
        return with_retries("block number", lambda: self.w3.eth.block_number)

    def events(self, name: str, from_block: int, to_block: int | str = "latest", **filters: Any) -> list[Any]:
        event = getattr(self.contract.events, name)
        return with_retries(
            f"{name} logs",
            lambda: event.get_logs(from_block=from_block, to_block=to_block, argument_filters=filters or None),
        )

    # ── writes ──────────────────────────────────────────────────────
    def transact(self, name: str, *args: Any, value: int = 0, contract: Any = None) -> Any:
        """Simulate, sign, send and wait for one call; returns the receipt."""
        tx_hash = self.send(name, *args, value=value, contract=contract)
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        except TimeExhausted as exc:
            raise ChainError(f"{name}: transaction {tx_hash.hex()} not mined in 60 s") from exc
        if receipt["status"] != 1:
            raise TransactionReverted(name, "reverted on chain after a successful simulation")
        log.debug("%s mined in block %d (gas %d)", name, receipt["blockNumber"], receipt["gasUsed"])
        return receipt

    def send(self, name: str, *args: Any, value: int = 0, contract: Any = None) -> bytes:
        """Simulate, sign and send one call without waiting for it; returns the transaction hash."""
        if self.account is None:
            raise ChainError(f"{name}: no account configured to sign with")
        fn = getattr((contract or self.contract).functions, name)(*args)
        sender = self.account.address
        try:
            # simulated in the block the call will land in, not the one already mined
            gas = with_retries(name, lambda: fn.estimate_gas({"from": sender, "value": value}, "pending"))
        except ContractLogicError as exc:
            raise TransactionReverted(name, _reason(exc)) from None
        tx = fn.build_transaction({
            "from": sender,
            "value": value,
            "gas": gas * 5 // 4 + 20_000,
            "nonce": with_retries("nonce", lambda: self.w3.eth.get_transaction_count(sender, "pending")),
        })
        signed = self.account.sign_transaction(tx)
        return with_retries(name, lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction))

    def receipt(self, tx_hash: bytes) -> Any | None:
        """The receipt of a sent transaction, or None while it is not mined."""
        try:
            return with_retries("receipt", lambda: self.w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None

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
