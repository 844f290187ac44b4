"""Random sequences of market moves checked against a model of the books kept by the test itself.

After every move the model's credits, stakes, verifier set, pool, escrow and task fields must equal
the contract's exactly, and the market's ether balance must equal both the ether the people sent in
minus what they got back and `liabilities()`. Each move either succeeds or reverts with the exact
reason the model predicts. A second machine lets a coalition play against the jackpot and honest
verifiers. The dispute game is the test arbiter, played faithfully: a genuine proof can never be
proven wrong.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import astuple, dataclass, field

import boa
from eth_abi import decode, encode
from eth_utils import keccak, to_canonical_address, to_checksum_address
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from offchain.chain.suite import ETHER, TERMINAL_STATES, Role, TaskState, Terms
from offchain.chain.suite import DEFAULT_MIN_WINDOW, DEFAULT_UNBOND_DELAY, create_address
from tests.conftest import CHECKPOINTS, SPEC_CID, commitments, load_market, load_test_contract, next_block

PPM = 1_000_000
HORIZON = 256  # blocks a draw may wait
MAX_LIVE_TASKS = 5  # more would spread the moves too thin for whole lifecycles
MAX_PROBES = 16
ZERO = "0x" + "00" * 20
NO_ROOT = b"\x00" * 32
ERROR_SELECTOR = keccak(b"Error(string)")[:4]
ALL_ROLES = int(Role.SOLVER | Role.VERIFIER | Role.WHISTLEBLOWER)
SOLVER_WHISTLEBLOWER = int(Role.SOLVER | Role.WHISTLEBLOWER)
OPEN, CLAIMED, SUBMITTED, ACCEPTED, DISPUTED = (
    TaskState.OPEN, TaskState.CLAIMED, TaskState.SUBMITTED, TaskState.ACCEPTED, TaskState.DISPUTED)
FINALISED, CANCELLED, REFUNDED = TaskState.FINALISED, TaskState.CANCELLED, TaskState.REFUNDED


def base_terms(forced: int) -> Terms:
    # 10% tax on at least 4 ether keeps every jackpot payout (cap 0.4 ether) within one task's tax
    # windows long enough that a move is often made in time, short enough that clocks do run out
    return Terms(forced_error_ppm=forced, tax_ppm=100_000, min_payment=4 * ETHER, verify_window=2_400,
                 whistle_window=1_800, reveal_window=1_800)


def alt_terms(forced: int) -> Terms:
    return base_terms(forced).replace(
        verifier_bond=2 * ETHER, challenge_bond=3 * ETHER // 2, silence_slash=3 * ETHER // 10,
        min_solver_stake=2 * ETHER, verifier_fee_ppm=100_000, winner_share_ppm=400_000, payout_ppm=200_000,
        verify_window=900, whistle_window=700, reveal_window=800,
    )


# ── coverage ────────────────────────────────────────────────────────
OUTCOMES = (
    "create", "cancel", "claim", "draw entropy", "draw entropy forced", "draw verifier", "draw no verifier",
    "submit genuine", "submit wrong", "accept", "challenge by verifier", "challenge by whistleblower",
    "declare forced error", "resolve solver won", "resolve challenger won proven",
    "resolve challenger won by timeout", "resolve forced declared and proven", "resolve forced declared unproven",
    "jackpot payout", "finalise normal", "finalise forced", "expire open", "expire claimed deadline",
    "expire claimed missed draw", "expire submitted missed draw", "expire submitted silent verifier",
    "expire submitted unverified", "expire accepted", "reopen", "refund", "withdraw", "unbond", "withdraw stake",
    "verifier evicted", "publish terms", "ownership moved",
)
COUNTS: Counter = Counter()


@dataclass
class Stake:
    bonded: int = 0
    locked: int = 0
    unbonding: int = 0
    ready_at: int = 0
    roles: int = 0


@dataclass
class Task:
    submitter: str
    escrow: int
    tax: int
    solver_stake: int
    terms_id: int
    terms: Terms = field(repr=False)
    expires: int
    train_window: int
    state: TaskState = OPEN
    solver: str = ZERO
    secret: bytes = b""
    forced: bool = False  # the drawn entropy forces an error into the first proof
    round: int = 0
    deadline: int = 0
    proof_root: bytes = NO_ROOT
    genuine: bool = True  # what the model knows of the proof under way
    verifier: str = ZERO
    challenger: str = ZERO
    dispute_id: int = 0
    draw_block: int = 0
    forced_declared: bool = False


def is_forced(secret: bytes, entropy: bytes, ppm: int) -> bool:
    return int.from_bytes(keccak(secret + entropy), "big") % PPM < ppm


def draw_pending(t: Task) -> bool:
    return t.state in CLAIMED | SUBMITTED and t.draw_block != 0


def awaiting_verdict(t: Task) -> bool:
    return t.state == SUBMITTED and t.draw_block == 0 and t.verifier != ZERO


def live(t: Task) -> bool:
    return t.state not in TERMINAL_STATES


def any_task(pred):
    return lambda self: any(pred(t) for t in self.tasks.values())


def word(value) -> int:
    """A model value as the storage word that holds it."""
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    if isinstance(value, str):
        return int(value, 16)
    return int(value)


class Storage:
    """The market's storage read word by word, laid out as the compiler reports (a view costs an
    EVM call; the reader is checked against the views once per example)."""

    def __init__(self, market):
        self.layout = market.compiler_data.storage_layout["storage_layout"]
        self.address = to_canonical_address(market.address)
        self.task_fields = list(market.module_t.variables["tasks"].typ.value_type.members)

    def _word(self, slot: int) -> int:
        return boa.env.evm.vm.state.get_storage(self.address, slot)

    def _slot(self, *path: str) -> int:
        node = self.layout
        for name in path:
            node = node[name]
        return node["slot"]

    @staticmethod
    def _entry(base: int, key: int) -> int:
        return int.from_bytes(keccak(base.to_bytes(32, "big") + key.to_bytes(32, "big")), "big")

    def value(self, *path: str) -> int:
        return self._word(self._slot(*path))

    def credit(self, account: str) -> int:
        return self._word(self._entry(self._slot("ledger", "credits"), word(account)))

    def stake(self, account: str) -> tuple:
        base = self._entry(self._slot("stakes", "accounts"), word(account))
        return tuple(self._word(base + i) for i in range(5))  # Stake: bonded, locked, unbonding, ready_at, roles

    def verifiers(self) -> list[str]:
        base = self._slot("stakes", "verifiers")
        return [to_checksum_address(self._word(base + 1 + i).to_bytes(32, "big")[12:])
                for i in range(self._word(base))]

    def task(self, task_id: int, fields=None) -> dict[str, int]:
        base = self._entry(self._slot("tasks"), task_id)
        return {name: self._word(base + self.task_fields.index(name)) for name in fields or self.task_fields}


def block_hashes(number: int) -> list[bytes]:
    """The hashes of the 256 blocks before `number`, newest first, named as `next_block` names them."""
    return [keccak(b"block %d" % n) for n in range(number - 1, max(number - 1 - HORIZON, -1), -1)]


def travel(seconds: int) -> None:
    """Move the clock, mining a block every 12 seconds; every block passed gets a hash."""
    assert seconds >= 0
    patch = boa.env.evm.patch
    patch.timestamp += seconds
    patch.block_number += seconds // 12
    patch.prev_hashes = block_hashes(patch.block_number)


def _deploy_code(partial, types: list[str], args: list):
    """Deploy compiled code as is (`deploy()` rebuilds a source map each time, which dominates a
    short example)."""
    address, computation = boa.env.deploy(bytecode=partial.compiler_data.bytecode + encode(types, args))
    assert not computation.is_error
    contract = partial.at(address)
    contract.__class__ = _quiet(type(contract))
    return contract


@functools.cache
def _quiet(cls):
    """The contract class with a short repr: boa takes one on every revert, and the default dumps
    all storage, which would dominate the run time of expected reverts."""
    return type("Quiet" + cls.__name__, (cls,), {"__repr__": lambda self: f"<contract at {self.address}>"})


def deploy_suite(terms: Terms):
    """The market and the test arbiter bound to it, as `tests.conftest.deploy_suite` builds them."""
    deployer = boa.env.eoa
    nonce = boa.env.evm.vm.state.get_nonce(to_canonical_address(deployer))
    arbiter = _deploy_code(load_test_contract("ManualArbiter"), ["address"], [create_address(deployer, nonce + 1)])
    terms_type = "(" + ",".join(["uint256"] * len(terms.as_tuple())) + ")"
    market = _deploy_code(load_market(), ["address", "uint256", terms_type, "uint256"],
                          [arbiter.address, DEFAULT_UNBOND_DELAY, terms.as_tuple(), DEFAULT_MIN_WINDOW])
    assert arbiter.market() == market.address
    return market, arbiter


# the first value of each list is the one generation leans to: keep it the most useful
person = st.integers(0, 63)
when = st.sampled_from([120, 1, 601, 120, 1_000, 3_600])
rarely = st.sampled_from([False, False, False, True])
roles = st.sampled_from([ALL_ROLES, int(Role.SOLVER), int(Role.VERIFIER), int(Role.WHISTLEBLOWER), 5, 6, 0])


class Market(RuleBasedStateMachine):
    """Rules shared by both machines; `movers` are the accounts whose moves are arbitrary and
    `honest` verifiers only ever accept genuine proofs and challenge wrong ones."""

    # ── set-up ──────────────────────────────────────────────────────
    def _deploy(self, forced: int, names: list[str]):
        self.anchor = boa.env.anchor()
        self.anchor.__enter__()
        boa.env.evm.patch.prev_hashes = block_hashes(boa.env.evm.patch.block_number)
        self.settling = False
        self.forced_ppm = forced
        self.current = 1
        self.terms = {self.current: base_terms(forced)}
        self.market, self.arbiter = deploy_suite(self.terms[1])
        self.storage = Storage(self.market)
        self.owner, self.pending = boa.env.eoa, ZERO
        self.disputes = self.arbiter.dispute_count()
        self.people = [boa.env.generate_address(n) for n in names]
        for p in self.people:
            boa.env.set_balance(p, 10_000 * ETHER)
        self.everyone = [*self.people, boa.env.eoa]
        self.eth_start = {p: boa.env.get_balance(p) for p in self.everyone}
        self.credits = dict.fromkeys(self.everyone, 0)
        self.stakes = {p: Stake() for p in self.everyone}
        self.vset: list[str] = []
        self.pool = 0
        self.tasks: dict[int, Task] = {}
        self.nonce = 0
        self.honest: list[str] = []
        self.movers = self.people

    def teardown(self):
        try:
            if hasattr(self, "market"):
                self._settle()
        finally:
            if hasattr(self, "anchor"):
                self.anchor.__exit__(None, None, None)

    # ── helpers ─────────────────────────────────────────────────────
    def _note(self, name: str) -> None:
        assert name in OUTCOMES, name
        if not self.settling:
            event(name)
            COUNTS[name] += 1

    def _tx(self, who, fn, *args, value: int = 0, revert: str | None = None):
        """Send a transaction: it reverts with exactly `revert` when that is given, else it must succeed."""
        if revert is None:
            with boa.env.prank(who):
                return fn(*args, value=value) if value else fn(*args)
        # a reverted call is checked by hand: boa's error report dumps all storage, which is slow
        computation = boa.env.execute_code(to_address=fn.contract.address, sender=who, value=value,
                                           data=fn.prepare_calldata(*args))
        assert computation.is_error, f"{fn.func_t.name} did not revert with {revert!r}"
        output = computation.output
        assert output[:4] == ERROR_SELECTOR and decode(["string"], output[4:]) == (revert,), (revert, output)
        event(f"reverted: {revert}")
        return None

    @staticmethod
    def _now() -> int:
        return boa.env.timestamp

    @staticmethod
    def _block() -> int:
        return boa.env.evm.patch.block_number

    def _mover(self, i: int) -> str:
        return self.movers[i % len(self.movers)]

    def _pick(self, data, pred) -> int:
        return data.draw(st.sampled_from(sorted(i for i, t in self.tasks.items() if pred(t))), label="task")

    def _cur(self) -> Terms:
        return self.terms[self.current]

    def _free(self, p: str) -> int:
        return self.stakes[p].bonded - self.stakes[p].locked

    def _secret(self) -> bytes:
        self.nonce += 1
        return keccak(b"secret %d" % self.nonce)

    # ── the model's books ───────────────────────────────────────────
    def _credit(self, p: str, amount: int) -> None:
        if amount:
            self.credits[p] += amount

    def _lock(self, p: str, amount: int) -> None:
        assert self._free(p) >= amount
        self.stakes[p].locked += amount

    def _unlock(self, p: str, amount: int) -> None:
        assert self.stakes[p].locked >= amount
        self.stakes[p].locked -= amount

    def _evict_if_below(self, p: str) -> None:
        if self.stakes[p].bonded < self._cur().verifier_bond and p in self.vset:
            slot = self.vset.index(p)
            last = self.vset.pop()
            if last != p:
                self.vset[slot] = last
            self._note("verifier evicted")

    def _slash_to(self, p: str, amount: int, winner: str, share_ppm: int) -> None:
        self._unlock(p, amount)
        self.stakes[p].bonded -= amount
        self._evict_if_below(p)
        to_winner = amount * share_ppm // PPM
        self._credit(winner, to_winner)
        self.pool += amount - to_winner

    def _refund(self, t: Task) -> None:
        self._credit(t.submitter, t.escrow + t.tax)
        t.escrow = t.tax = 0
        self._note("refund")

    def _reopen_or_refund(self, t: Task) -> None:
        t.solver = t.verifier = t.challenger = ZERO
        t.proof_root, t.round, t.draw_block, t.forced_declared = NO_ROOT, 0, 0, False
        if self._now() <= t.expires:
            t.state = OPEN
            self._note("reopen")
        else:
            t.state = REFUNDED
            self._refund(t)

    def _open_whistle_window(self, t: Task, window: int) -> None:
        t.state, t.deadline = ACCEPTED, self._now() + window

    def _await_genuine_proof(self, t: Task) -> None:
        t.state, t.round, t.deadline = CLAIMED, 1, self._now() + t.terms.reveal_window
        t.proof_root, t.verifier, t.challenger, t.forced_declared = NO_ROOT, ZERO, ZERO, False

    def _release_verifier(self, t: Task) -> None:
        if t.verifier != ZERO:
            self._unlock(t.verifier, t.terms.verifier_bond)

    def _expected_verifier(self, t: Task, seed: bytes) -> str:
        count = len(self.vset)
        if count == 0:
            return ZERO
        start = int.from_bytes(seed, "big") % count
        for i in range(min(MAX_PROBES, count)):
            candidate = self.vset[(start + i) % count]
            if candidate != t.solver and self._free(candidate) >= t.terms.verifier_bond:
                return candidate
        return ZERO

    def _allow_loss(self, p: str, amount: int) -> None:
        """An honest account lost stake by its own fault."""

    # ── moves (each predicts the exact outcome, then checks it happened) ──
    def _do_deposit(self, who: str, roles: int, amount: int) -> None:
        s = self.stakes[who]
        revert = None
        if amount == 0:
            revert = "stakes: zero deposit"
        elif roles & Role.VERIFIER and s.bonded + amount < self._cur().verifier_bond:
            revert = "stakes: verifier stake below the verifier bond"
        self._tx(who, self.market.deposit, roles, value=amount, revert=revert)
        if revert:
            return
        s.bonded += amount
        s.roles |= roles
        if s.roles & Role.VERIFIER and s.bonded >= self._cur().verifier_bond and who not in self.vset:
            self.vset.append(who)

    def _do_unbond(self, who: str, amount: int) -> None:
        s = self.stakes[who]
        revert = None
        if amount == 0:
            revert = "stakes: zero amount"
        elif amount > self._free(who):
            revert = "stakes: amount exceeds free stake"
        self._tx(who, self.market.unbond, amount, revert=revert)
        if revert:
            return
        s.bonded -= amount
        s.unbonding += amount
        s.ready_at = self._now() + self.market.unbond_delay()
        self._evict_if_below(who)
        self._note("unbond")

    def _do_withdraw_stake(self, who: str) -> None:
        s = self.stakes[who]
        revert = None
        if s.unbonding == 0:
            revert = "stakes: nothing unbonding"
        elif self._now() < s.ready_at:
            revert = "stakes: still unbonding"
        self._tx(who, self.market.withdraw_stake, revert=revert)
        if revert:
            return
        self._credit(who, s.unbonding)
        s.unbonding = 0
        self._note("withdraw stake")

    def _do_withdraw(self, who: str) -> None:
        revert = None if self.credits[who] else "ledger: nothing to withdraw"
        before = boa.env.get_balance(who)
        self._tx(who, self.market.withdraw, revert=revert)
        if revert:
            return
        assert boa.env.get_balance(who) - before == self.credits[who]
        self.credits[who] = 0
        self._note("withdraw")

    def _do_create(self, who: str, payment: int, stake: int, life: int, window: int) -> None:
        terms = self._cur()
        revert = None
        if payment < terms.min_payment:
            revert = "market: payment below the minimum"
        elif stake < terms.min_solver_stake:
            revert = "market: solver stake below the minimum"
        expires = self._now() + life
        tid = self._tx(who, self.market.create_task, SPEC_CID, commitments(), stake, expires, window,
                       value=payment, revert=revert)
        if revert:
            return
        assert tid == len(self.tasks) + 1
        tax = payment * terms.tax_ppm // PPM
        self.tasks[tid] = Task(submitter=who, escrow=payment - tax, tax=tax, solver_stake=stake,
                               terms_id=self.current, terms=terms, expires=expires, train_window=window)
        self._note("create")

    def _do_cancel(self, tid: int, who: str) -> None:
        t = self.tasks[tid]
        revert = None if who == t.submitter else "market: caller is not the submitter"
        self._tx(who, self.market.cancel, tid, revert=revert)
        if revert:
            return
        t.state = CANCELLED
        self._refund(t)
        self._note("cancel")

    def _do_claim(self, tid: int, who: str) -> None:
        t = self.tasks[tid]
        revert = None
        if self._now() > t.expires:
            revert = "market: task expired"
        elif not self.stakes[who].roles & Role.SOLVER:
            revert = "market: caller is not a solver"
        elif who == t.submitter:
            revert = "market: submitter cannot solve"
        elif self._free(who) < t.solver_stake:
            revert = "stakes: insufficient free stake"
        secret = self._secret()
        self._tx(who, self.market.claim, tid, keccak(secret), revert=revert)
        if revert:
            return
        self._lock(who, t.solver_stake)
        self.pool += t.tax
        t.tax = 0
        t.state, t.solver, t.secret, t.forced = CLAIMED, who, secret, False
        t.deadline, t.draw_block = self._now() + t.train_window, self._block()
        self._note("claim")

    def _do_draw(self, tid: int, who: str) -> None:
        t = self.tasks[tid]
        revert = None
        if self._block() <= t.draw_block:
            revert = "market: draw block not mined yet"
        elif self._block() > t.draw_block + HORIZON:
            revert = "market: draw horizon passed"
        self._tx(who, self.market.draw, tid, revert=revert)
        if revert:
            return
        committed, t.draw_block = t.draw_block, 0
        onchain = self.storage.task(tid)
        if t.state == CLAIMED:
            entropy = onchain["entropy"].to_bytes(32, "big")
            t.forced = t.round == 0 and is_forced(t.secret, entropy, t.terms.forced_error_ppm)
            self._note("draw entropy forced" if t.forced else "draw entropy")
            return
        # the seed is the hash of the block that included the proof, with the task and the proof root
        seed = keccak(encode(["bytes32", "uint256", "bytes32"], [keccak(b"block %d" % committed), tid, t.proof_root]))
        t.verifier = self._expected_verifier(t, seed)
        if t.verifier != ZERO:
            self._lock(t.verifier, t.terms.verifier_bond)
        t.deadline = self._now() + t.terms.verify_window
        self._note("draw verifier" if t.verifier != ZERO else "draw no verifier")

    def _do_submit(self, tid: int, kind: str) -> None:
        """`kind`: honest (wrong only when forced), cheat (always wrong) or genuine (even when forced)."""
        t = self.tasks[tid]
        revert = None
        if self._now() > t.deadline:
            revert = "market: proof deadline passed"
        elif t.draw_block != 0:
            revert = "market: entropy not drawn"
        self.nonce += 1
        root = keccak(b"proof %d" % self.nonce)
        self._tx(t.solver, self.market.submit, tid, root, CHECKPOINTS, "cid", revert=revert)
        if revert:
            return
        forced = t.round == 0 and t.forced
        t.genuine = kind == "genuine" or (kind == "honest" and not forced)
        t.state, t.proof_root, t.verifier, t.draw_block = SUBMITTED, root, ZERO, self._block()
        self._note("submit genuine" if t.genuine else "submit wrong")

    def _do_accept(self, tid: int) -> None:
        t = self.tasks[tid]
        revert = "market: verify window passed" if self._now() > t.deadline else None
        self._tx(t.verifier, self.market.accept, tid, revert=revert)
        if revert:
            return
        self._open_whistle_window(t, t.terms.whistle_window)
        self._note("accept")

    def _do_challenge(self, tid: int, who: str, segment: int) -> None:
        t = self.tasks[tid]
        by_verifier = t.state == SUBMITTED
        revert = None
        if segment >= CHECKPOINTS - 1:
            revert = "market: no such segment"
        elif self._now() > t.deadline:
            revert = "market: challenge window passed"
        elif by_verifier:
            assert who == t.verifier
        elif not self.stakes[who].roles & Role.WHISTLEBLOWER:
            revert = "market: caller is not a whistleblower"
        elif who in (t.solver, t.verifier):
            revert = "market: party cannot blow the whistle"
        elif self._free(who) < t.terms.challenge_bond:
            revert = "stakes: insufficient free stake"
        dispute_id = self._tx(who, self.market.challenge, tid, t.proof_root, segment, revert=revert)
        if revert:
            return
        if not by_verifier:
            self._lock(who, t.terms.challenge_bond)
        self.disputes += 1
        assert dispute_id == self.disputes
        t.state, t.challenger, t.dispute_id = DISPUTED, who, dispute_id
        self._note("challenge by verifier" if by_verifier else "challenge by whistleblower")

    def _do_declare(self, tid: int, right_secret: bool) -> None:
        t = self.tasks[tid]
        secret = t.secret if right_secret else keccak(b"wrong " + t.secret)
        revert = None
        if not right_secret:
            revert = "market: secret does not match"
        elif not (t.round == 0 and t.forced):
            revert = "market: not a forced error"
        self._tx(t.solver, self.market.declare_forced_error, tid, secret, revert=revert)
        if revert:
            return
        t.forced_declared = True
        self._note("declare forced error")

    def _verdicts(self, t: Task) -> list[str]:
        """What the game can end in: a genuine proof is never proven wrong, and an honest
        challenger of a wrong proof plays it out to the end."""
        if t.challenger in self.honest:
            assert not t.genuine
            return ["proven", "timeout"]
        return ["solver", "timeout"] if t.genuine else ["proven", "timeout", "solver"]

    def _do_resolve(self, tid: int, verdict: str) -> None:
        t = self.tasks[tid]
        assert verdict in self._verdicts(t)
        solver_won, proven = verdict == "solver", verdict == "proven"
        self._tx(boa.env.eoa, self.arbiter.decide, t.dispute_id, solver_won, proven)
        terms = t.terms
        if solver_won:
            bond = terms.challenge_bond
            if t.challenger == t.verifier:
                bond = terms.verifier_bond
                t.verifier = ZERO
            self._allow_loss(t.challenger, bond)
            self._slash_to(t.challenger, bond, t.solver, terms.winner_share_ppm)
            t.challenger = ZERO
            self._open_whistle_window(t, terms.whistle_window)
            self._note("resolve solver won")
            return
        if t.challenger == t.verifier:
            self._unlock(t.verifier, terms.verifier_bond)
        else:
            self._unlock(t.challenger, terms.challenge_bond)
            if proven and not t.forced_declared:
                if t.verifier != ZERO:
                    self._slash_to(t.verifier, terms.verifier_bond, t.challenger, terms.winner_share_ppm)
            else:
                self._release_verifier(t)
        if proven and t.forced_declared:
            payout = min(self.pool * terms.payout_ppm // PPM, terms.payout_cap)
            self.pool -= payout
            self._credit(t.challenger, payout)
            if payout:
                self._note("jackpot payout")
            self._await_genuine_proof(t)
            self._note("resolve forced declared and proven")
            return
        self._note(("resolve forced declared unproven" if t.forced_declared else "resolve challenger won by timeout")
                   if not proven else "resolve challenger won proven")
        self._slash_to(t.solver, t.solver_stake, t.challenger, terms.winner_share_ppm)
        self._reopen_or_refund(t)

    def _do_finalise(self, tid: int, right_secret: bool) -> None:
        t = self.tasks[tid]
        secret = t.secret if right_secret else keccak(b"wrong " + t.secret)
        revert = None
        if self._now() <= t.deadline:
            revert = "market: whistleblower window open"
        elif self._now() > t.deadline + t.terms.reveal_window:
            revert = "market: reveal window passed"
        elif not right_secret:
            revert = "market: secret does not match"
        self._tx(t.solver, self.market.finalise, tid, secret, revert=revert)
        if revert:
            return
        if t.round == 0 and t.forced:
            self._release_verifier(t)
            self._await_genuine_proof(t)
            self._note("finalise forced")
            return
        fee = 0
        if t.verifier != ZERO:
            fee = t.escrow * t.terms.verifier_fee_ppm // PPM
            self._unlock(t.verifier, t.terms.verifier_bond)
            self._credit(t.verifier, fee)
        self._unlock(t.solver, t.solver_stake)
        self._credit(t.solver, t.escrow - fee)
        t.escrow, t.state = 0, FINALISED
        self._note("finalise normal")

    def _do_expire(self, tid: int, who: str) -> None:
        t, now, terms = self.tasks[tid], self._now(), self.tasks[tid].terms
        if t.state == OPEN:
            revert = None if now > t.expires else "market: task not expired"
        elif t.state == CLAIMED or draw_pending(t):
            missed = t.draw_block != 0 and self._block() > t.draw_block + HORIZON
            late = t.state == CLAIMED and now > t.deadline
            revert = None if missed or late else "market: proof deadline not passed"
        elif t.state == SUBMITTED:
            revert = None if now > t.deadline else "market: verify window not passed"
        elif t.state == ACCEPTED:
            revert = None if now > t.deadline + terms.reveal_window else "market: reveal window not passed"
        else:
            revert = "market: nothing to expire"
        self._tx(who, self.market.expire, tid, revert=revert)
        if revert:
            return
        if t.state == OPEN:
            t.state = REFUNDED
            self._refund(t)
            self._note("expire open")
        elif t.state == CLAIMED or draw_pending(t):
            kind = "missed draw" if missed else "deadline"
            self._note(f"expire {'claimed' if t.state == CLAIMED else 'submitted'} {kind}")
            self._slash_to(t.solver, t.solver_stake, t.submitter, terms.winner_share_ppm)
            self._reopen_or_refund(t)
        elif t.state == SUBMITTED:
            if t.verifier != ZERO:
                self._allow_loss(t.verifier, terms.silence_slash)
                self._unlock(t.verifier, terms.verifier_bond - terms.silence_slash)
                self._slash_to(t.verifier, terms.silence_slash, ZERO, 0)
            t.verifier = ZERO
            if now <= t.expires:
                t.draw_block = self._block()
                self._note("expire submitted silent verifier")
            else:
                self._open_whistle_window(t, terms.whistle_window)
                self._note("expire submitted unverified")
        else:
            self._release_verifier(t)
            self._slash_to(t.solver, t.solver_stake, t.submitter, terms.winner_share_ppm)
            self._reopen_or_refund(t)
            self._note("expire accepted")

    # ── rules ───────────────────────────────────────────────────────
    @rule(who=person, move=st.sampled_from(["deposit", "withdraw", "unbond half", "withdraw stake", "deposit",
                                            "unbond all", "unbond too much"]),
          roles=roles, amount=st.sampled_from([5 * ETHER, 2 * ETHER, ETHER, ETHER // 2, 0]))
    def stake_moves(self, who, move, roles, amount):
        who = self._mover(who)
        free = self._free(who)
        match move:
            case "deposit":
                self._do_deposit(who, roles, amount)
            case "withdraw":
                self._do_withdraw(who)
            case "withdraw stake":
                self._do_withdraw_stake(who)
            case _:
                self._do_unbond(who, {"unbond all": free, "unbond half": free // 2, "unbond too much": free + 1}[move])

    @rule(dt=when, block_only=rarely)
    def wait(self, dt, block_only):
        if block_only:
            next_block()
        else:
            travel(dt)

    @precondition(lambda self: sum(live(t) for t in self.tasks.values()) < MAX_LIVE_TASKS)
    @rule(who=person, extra=st.sampled_from([0, ETHER, 6 * ETHER, -1]), stake=st.sampled_from([0, ETHER, 3 * ETHER, -1]),
          life=st.sampled_from([86_400, 7_200, 86_400, 3_600, 600]), window=st.sampled_from([3_600, 600]))
    def create(self, who, extra, stake, life, window):
        terms = self._cur()
        self._do_create(self._mover(who), terms.min_payment + extra, terms.min_solver_stake + stake, life, window)

    # Each phase of a task has a move of its own, gated by that phase; `progress` plays the move of
    # whatever phase a task is in, so that whole lifecycles happen even in runs where some rules
    # are switched off.
    def _open_move(self, data, tid: int) -> None:
        move = data.draw(st.sampled_from(["claim and draw", "claim", "cancel", "claim and draw", "cancel by another",
                                          "claim by the submitter"]), label="move")
        submitter = self.tasks[tid].submitter
        others = [p for p in self.movers if p != submitter]
        if move.startswith("cancel"):
            self._do_cancel(tid, boa.env.eoa if move == "cancel by another" else submitter)
            return
        solver = submitter if move == "claim by the submitter" or not others else data.draw(st.sampled_from(others))
        self._do_claim(tid, solver)
        if move == "claim and draw" and draw_pending(self.tasks[tid]):
            next_block()
            self._do_draw(tid, solver)

    def _draw_move(self, data, tid: int) -> None:
        if not data.draw(rarely, label="same block"):
            next_block()
        self._do_draw(tid, self._mover(data.draw(person)))

    def _submit_move(self, data, tid: int) -> None:
        self._do_submit(tid, data.draw(st.sampled_from(["honest", "cheat", "genuine"]), label="proof"))
        if data.draw(st.booleans(), label="then draw") and draw_pending(self.tasks[tid]):
            next_block()
            self._do_draw(tid, self.tasks[tid].submitter)

    def _verifier_move(self, data, tid: int) -> None:
        t = self.tasks[tid]
        if t.verifier in self.honest:  # it checks the proof and answers within its window
            if t.genuine:
                self._do_accept(tid)
            else:
                self._do_challenge(tid, t.verifier, 0)
        # any other verifier mostly sees what the proof is
        elif data.draw(st.sampled_from([False, True, True, True] if not t.genuine else [False, False, False, True]),
                       label="challenge"):
            self._do_challenge(tid, t.verifier, data.draw(st.sampled_from([0, 3, CHECKPOINTS - 2, CHECKPOINTS - 1])))
        else:
            self._do_accept(tid)

    def _accepted_move(self, data, tid: int) -> None:
        t = self.tasks[tid]
        move = data.draw(st.sampled_from(["wait and finalise", "blow whistle", "finalise", "blow whistle",
                                          "finalise with a wrong secret", "blow whistle as a party"]), label="move")
        if move == "wait and finalise" and self._now() <= t.deadline:
            travel(t.deadline + 1 - self._now())
        if "finalise" in move:
            self._do_finalise(tid, move != "finalise with a wrong secret")
            return
        others = [p for p in self.movers if p not in (t.solver, t.verifier)]
        who = t.solver if move == "blow whistle as a party" or not others else data.draw(st.sampled_from(others))
        self._do_challenge(tid, who, data.draw(st.sampled_from([0, 5, CHECKPOINTS - 1]), label="segment"))

    def _disputed_move(self, data, tid: int) -> None:
        move = data.draw(st.sampled_from(["declare and play on", "resolve", "declare and play on",
                                          "declare with a wrong secret", "declare"]), label="move")
        if move.startswith("declare"):
            self._do_declare(tid, move != "declare with a wrong secret")
        if move in ("resolve", "declare and play on"):
            self._do_resolve(tid, data.draw(st.sampled_from(self._verdicts(self.tasks[tid])), label="verdict"))

    def _expire_move(self, data, tid: int) -> None:
        """Call `expire`, maybe after waiting until it is due (an open task's expiry is left to the
        clock: waiting for it would end every other task too)."""
        t = self.tasks[tid]
        wait = "no" if t.state == OPEN else data.draw(st.sampled_from(["no", "until due", "no", "past its expiry"]),
                                                      label="wait")
        if draw_pending(t) and wait != "no":
            travel(max(0, t.draw_block + HORIZON + 1 - self._block()) * 12)
        elif wait != "no":
            due = {CLAIMED: t.deadline, SUBMITTED: t.deadline, ACCEPTED: t.deadline + t.terms.reveal_window}.get(
                t.state, self._now())
            if wait == "past its expiry":
                due = max(due, t.expires)
            travel(max(0, due + 1 - self._now()))
        self._do_expire(tid, self._mover(data.draw(person)))

    def _phase_move(self, t: Task):
        """The move for a task's phase; None when only time or `expire` can move it."""
        if t.state == OPEN:
            return self._open_move
        if draw_pending(t):
            return self._draw_move
        if t.state == CLAIMED:
            return self._submit_move
        if awaiting_verdict(t):
            return self._verifier_move
        return {ACCEPTED: self._accepted_move, DISPUTED: self._disputed_move}.get(t.state)

    def _progress(self, data, expire: bool) -> None:
        tid = self._pick(data, live)
        move = self._phase_move(self.tasks[tid])
        (self._expire_move if expire or move is None else move)(data, tid)

    # three names for one rule: runs switch rules off at random, and rarely all three
    @precondition(any_task(live))
    @rule(data=st.data(), expire=rarely)
    def progress(self, data, expire):
        self._progress(data, expire)

    @precondition(any_task(live))
    @rule(data=st.data(), expire=rarely)
    def progress_again(self, data, expire):
        self._progress(data, expire)

    @precondition(any_task(live))
    @rule(data=st.data(), expire=rarely)
    def progress_further(self, data, expire):
        self._progress(data, expire)

    @precondition(any_task(lambda t: t.state == OPEN))
    @rule(data=st.data())
    def open_task(self, data):
        self._open_move(data, self._pick(data, lambda t: t.state == OPEN))

    @precondition(any_task(draw_pending))
    @rule(data=st.data())
    def draw(self, data):
        self._draw_move(data, self._pick(data, draw_pending))

    @precondition(any_task(lambda t: t.state == CLAIMED and not draw_pending(t)))
    @rule(data=st.data())
    def submit(self, data):
        self._submit_move(data, self._pick(data, lambda t: t.state == CLAIMED and not draw_pending(t)))

    @precondition(any_task(awaiting_verdict))
    @rule(data=st.data())
    def verify(self, data):
        self._verifier_move(data, self._pick(data, awaiting_verdict))

    @precondition(any_task(lambda t: t.state == ACCEPTED))
    @rule(data=st.data())
    def accepted_task(self, data):
        self._accepted_move(data, self._pick(data, lambda t: t.state == ACCEPTED))

    @precondition(any_task(lambda t: t.state == DISPUTED))
    @rule(data=st.data())
    def disputed_task(self, data):
        self._disputed_move(data, self._pick(data, lambda t: t.state == DISPUTED))

    @precondition(any_task(live))
    @rule(data=st.data(), ended=rarely)
    def expire(self, data, ended):
        if ended and any(not live(t) for t in self.tasks.values()):
            self._do_expire(self._pick(data, lambda t: not live(t)), self._mover(data.draw(person)))
        else:
            self._expire_move(data, self._pick(data, live))

    # ── invariants ──────────────────────────────────────────────────
    @invariant()
    def books_match_the_model(self):
        raw = self.storage
        for p in self.everyone:
            s = self.stakes[p]
            assert (raw.credit(p), raw.stake(p)) == (self.credits[p], astuple(s)), p
            assert s.locked <= s.bonded
        assert raw.verifiers() == self.vset
        escrow = sum(t.escrow + t.tax for t in self.tasks.values())
        staked = sum(s.bonded + s.unbonding for s in self.stakes.values())
        credits = sum(self.credits.values())
        got = [raw.value(*path) for path in (("jackpot", "pool"), ("total_escrow",), ("stakes", "total_staked"),
                                             ("ledger", "total_credits"), ("task_count",))]
        assert got == [self.pool, escrow, staked, credits, len(self.tasks)]
        for tid, t in self.tasks.items():
            self._check_task(tid, t)

    def _check_task(self, tid: int, t: Task) -> None:
        want = {"state": t.state, "submitter": t.submitter, "escrow": t.escrow, "tax": t.tax,
                "solver_stake": t.solver_stake, "terms_id": t.terms_id, "expires": t.expires, "solver": t.solver,
                "round": t.round, "deadline": t.deadline, "proof_root": t.proof_root, "verifier": t.verifier,
                "challenger": t.challenger, "dispute_id": t.dispute_id, "draw_block": t.draw_block,
                "forced_declared": t.forced_declared}
        assert self.storage.task(tid, want) == {k: word(v) for k, v in want.items()}, (tid, t)
        if t.state in TERMINAL_STATES:
            assert t.escrow == t.tax == 0

    def _check_storage_reader(self) -> None:
        """The storage reader sees what the views show."""
        m = self.market
        for p in self.everyone:
            assert (m.credits(p), tuple(m.accounts(p))) == (self.storage.credit(p), self.storage.stake(p))
        for tid in self.tasks:
            view = m.tasks(tid)
            assert {k: word(getattr(view, k)) for k in self.storage.task_fields} == self.storage.task(tid)

    @invariant()
    def balance_is_what_people_paid_in_and_what_is_owed(self):
        paid_in = sum(self.eth_start[p] - boa.env.get_balance(p) for p in self.everyone)
        balance = boa.env.get_balance(self.market.address)
        model = sum(t.escrow + t.tax for t in self.tasks.values()) + self.pool + sum(self.credits.values()) + sum(
            s.bonded + s.unbonding for s in self.stakes.values())
        assert balance == paid_in == self.market.liabilities() == model

    # ── settlement ──────────────────────────────────────────────────
    def _drive(self, tid: int) -> None:
        """One honest, valid move that brings a task nearer a terminal state."""
        t, now = self.tasks[tid], self._now()
        anyone = self.everyone[0]
        if t.state == OPEN:
            self._do_cancel(tid, t.submitter)
        elif draw_pending(t):
            if self._block() > t.draw_block + HORIZON:
                self._do_expire(tid, anyone)
            else:
                if self._block() == t.draw_block:
                    next_block()
                self._do_draw(tid, anyone)
        elif t.state == CLAIMED:
            if now <= t.deadline:
                self._do_submit(tid, "honest")
            else:
                self._do_expire(tid, anyone)
        elif t.state == SUBMITTED:
            if t.verifier != ZERO and now <= t.deadline:
                if t.genuine:
                    self._do_accept(tid)
                else:
                    self._do_challenge(tid, t.verifier, 0)
            elif t.verifier != ZERO or now > max(t.deadline, t.expires):
                if now <= t.deadline:
                    travel(t.deadline + 1 - now)
                self._do_expire(tid, anyone)
            else:
                # nobody may be left to verify: past its expiry the proof goes to the whistleblowers
                travel(max(t.deadline, t.expires) + 1 - now)
        elif t.state == ACCEPTED:
            if now <= t.deadline:
                travel(t.deadline + 1 - now)
            elif now <= t.deadline + t.terms.reveal_window:
                self._do_finalise(tid, True)
            else:
                self._do_expire(tid, anyone)
        elif t.state == DISPUTED:
            if t.round == 0 and t.forced and not t.forced_declared and not t.genuine:
                self._do_declare(tid, True)
            else:
                self._do_resolve(tid, "solver" if t.genuine else "proven")

    def _run_to_end(self, tid: int) -> None:
        for _ in range(60):
            if not live(self.tasks[tid]):
                return
            self._drive(tid)
            self.books_match_the_model()
            self.balance_is_what_people_paid_in_and_what_is_owed()
        assert not live(self.tasks[tid]), (tid, self.tasks[tid])

    def _settle(self) -> None:
        """Every task reaches a terminal state through public functions; once everyone has
        withdrawn, only the jackpot is left."""
        self.settling = True
        self._check_storage_reader()
        for tid in sorted(self.tasks):
            self._run_to_end(tid)
        self._before_withdrawals()
        for p in self.everyone:
            assert self.stakes[p].locked == 0, p
            if self._free(p):
                self._do_unbond(p, self._free(p))
        travel(self.market.unbond_delay())
        for p in self.everyone:
            if self.stakes[p].unbonding:
                self._do_withdraw_stake(p)
            if self.credits[p]:
                self._do_withdraw(p)
        self.books_match_the_model()
        self.balance_is_what_people_paid_in_and_what_is_owed()
        m = self.market
        assert m.total_staked() == m.total_credits() == m.total_escrow() == 0
        assert boa.env.get_balance(m.address) == m.liabilities() == m.pool() == self.pool
        self._after_withdrawals()

    def _before_withdrawals(self) -> None:
        pass

    def _after_withdrawals(self) -> None:
        pass


class MarketMachine(Market):
    """Six people who may each play every role, in any order, and the owner changing terms."""

    @initialize(forced=st.sampled_from([PPM, 300_000, PPM, 0]),
                stakes=st.lists(st.tuples(st.sampled_from([20, 5, 2, 1]), st.sampled_from([ALL_ROLES, SOLVER_WHISTLEBLOWER])),
                               min_size=6, max_size=6), tasks=st.integers(2, 4))
    def deploy(self, forced, stakes, tasks):
        self._deploy(forced, ["alice", "bob", "carol", "dave", "erin", "frank"])
        for p, (amount, roles) in zip(self.people, stakes):
            self._do_deposit(p, roles, amount * ETHER)
        for i in range(tasks):  # work from the start, whatever rules this example enables
            self._do_create(self.people[i], 6 * ETHER, 2 * ETHER, 86_400, 3_600)

    @rule(which=st.sampled_from(["alt", "base", "bad", "owner"]), by_other=rarely, who=person, accept=st.booleans())
    def owner_moves(self, which, by_other, who, accept):
        """Publish terms (or bad ones, or as someone else), or hand ownership on."""
        if which == "owner":
            self._move_ownership(who, accept)
            return
        by_owner = not by_other
        new = {"base": base_terms, "alt": alt_terms}.get(which, lambda f: base_terms(f).replace(tax_ppm=100_001))(
            self.forced_ppm)
        who = self.owner if by_owner else self.people[0] if self.owner != self.people[0] else self.people[1]
        revert = ("terms: tax too high" if which == "bad" else None) if by_owner else "terms: caller is not the owner"
        terms_id = self._tx(who, self.market.publish_terms, new.as_tuple(), revert=revert)
        if revert:
            return
        assert terms_id == self.current + 1
        self.current = terms_id
        self.terms[terms_id] = new
        self._note("publish terms")

    def _move_ownership(self, who, accept):
        new = self._mover(who)
        self._tx(self.owner, self.market.transfer_ownership, new)
        self.pending = new
        stranger = next(p for p in self.everyone if p != new)
        self._tx(stranger, self.market.accept_ownership, revert="terms: caller is not the pending owner")
        if accept:
            self._tx(new, self.market.accept_ownership)
            self.owner, self.pending = new, ZERO
            self._note("ownership moved")

    @invariant()
    def ownership_matches(self):
        got = [self.storage.value("terms", name) for name in ("owner", "pending_owner", "current_terms")]
        assert got == [word(self.owner), word(self.pending), self.current]

    def _before_withdrawals(self) -> None:
        assert (self.market.owner(), self.market.pending_owner(), self.market.current_terms()) == (
            self.owner, self.pending, self.current)


class CoalitionMachine(Market):
    """A submitter, a solver, a verifier and a whistleblower acting together against a jackpot
    that honest tasks filled, with honest verifiers in the set."""

    @initialize(forced=st.sampled_from([300_000, PPM]), honest_tasks=st.integers(1, 3),
                coalition_stake=st.sampled_from([2, 5]))
    def deploy(self, forced, honest_tasks, coalition_stake):
        names = ["c_submitter", "c_solver", "c_verifier", "c_whistleblower", "h_submitter", "h_solver", "h_v1", "h_v2"]
        self._deploy(forced, names)
        c_sub, c_sol, c_ver, c_wb, h_sub, h_sol, hv1, hv2 = self.people
        self.movers = [c_sub, c_sol, c_ver, c_wb]
        self.honest = [hv1, hv2]
        self.allowed_loss = dict.fromkeys(self.honest, 0)
        self._do_deposit(h_sol, Role.SOLVER, 10 * ETHER)
        for v in self.honest:
            self._do_deposit(v, Role.VERIFIER, 3 * ETHER)
        self.honest_stake = {v: self.stakes[v].bonded for v in self.honest}
        for _ in range(honest_tasks):
            self._do_create(h_sub, 6 * ETHER, 2 * ETHER, 86_400, 3_600)
            tid = len(self.tasks)
            self._do_claim(tid, h_sol)
            self._run_to_end(tid)
            assert self.tasks[tid].state == FINALISED
        assert self.pool > 0
        # the coalition joins only now: what honest work paid is not its gain
        self.coalition_start = {p: boa.env.get_balance(p) for p in self.movers}
        self._do_deposit(c_sol, Role.SOLVER, coalition_stake * ETHER)
        self._do_deposit(c_ver, Role.VERIFIER, coalition_stake * ETHER)
        self._do_deposit(c_wb, Role.WHISTLEBLOWER, coalition_stake * ETHER)

    def _allow_loss(self, p: str, amount: int) -> None:
        if p in self.honest:
            self.allowed_loss[p] += amount

    @invariant()
    def coalition_is_never_ahead(self):
        """What the coalition holds anywhere (ether, credits, stake, its tasks' escrow) is never more
        than it started with."""
        worth = sum(boa.env.get_balance(p) - self.coalition_start[p] + self.credits[p] + self.stakes[p].bonded
                    + self.stakes[p].unbonding for p in self.movers)
        worth += sum(t.escrow + t.tax for t in self.tasks.values() if t.submitter in self.movers)
        assert worth <= 0, worth

    @invariant()
    def honest_verifiers_lose_only_by_their_own_fault(self):
        for v in self.honest:
            s = self.market.accounts(v)
            assert self.honest_stake[v] - (s.bonded + s.unbonding) <= self.allowed_loss[v], v

    def _after_withdrawals(self) -> None:
        gained = sum(boa.env.get_balance(p) - self.coalition_start[p] for p in self.movers)
        assert gained <= 0, gained
        for v in self.honest:
            assert boa.env.get_balance(v) - self.eth_start[v] >= -self.allowed_loss[v], v


EXAMPLES = int(os.environ.get("DTM_STATEFUL_EXAMPLES", "15"))
QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]  # load varies; results do not

MarketMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=80, deadline=None, suppress_health_check=QUIET)
test_market_invariants = MarketMachine.TestCase

CoalitionMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=80, deadline=None, suppress_health_check=QUIET)
test_coalition_never_profits = CoalitionMachine.TestCase


def test_every_outcome_is_reached():
    """A fixed run reaches every rule outcome at least once, so the invariants are not vacuous."""
    COUNTS.clear()
    run_state_machine_as_test(MarketMachine, settings=settings(
        max_examples=50, stateful_step_count=100, deadline=None, derandomize=True, suppress_health_check=QUIET,
        database=None))
    missing = [name for name in OUTCOMES if COUNTS[name] == 0]
    assert not missing, (missing, dict(COUNTS))
