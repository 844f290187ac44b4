"""Random sequences of every market action, with PROTOCOL §8 checked after each step."""

from __future__ import annotations

import os

import boa
from boa.contracts.base_evm_contract import BoaError
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from offchain.chain.suite import ETHER, TERMINAL_STATES, Role, TaskState, Terms
from tests.conftest import CHECKPOINTS, INTERVAL, SPEC_CID, SPEC_HASH, STEPS, deploy_suite

ACTIVE = TaskState.CLAIMED | TaskState.SUBMITTED | TaskState.ACCEPTED | TaskState.DISPUTED
PPM = 1_000_000
ZERO = "0x0000000000000000000000000000000000000000"

amounts = st.integers(min_value=1, max_value=5 * ETHER)
seconds = st.sampled_from([1, 59, 599, 600, 601, 3_600, 86_400])


class MarketMachine(RuleBasedStateMachine):
    """The model keeps only what the chain cannot tell: who knows which secret."""

    @initialize(forced=st.sampled_from([0, 300_000, PPM]))
    def deploy(self, forced):
        self.anchor = boa.env.anchor()
        self.anchor.__enter__()
        self.market, self.arbiter = deploy_suite(Terms(forced_error_ppm=forced))
        names = ["alice", "bob", "carol", "dave", "erin", "frank"]
        self.people = [boa.env.generate_address(n) for n in names]
        for p in self.people:
            boa.env.set_balance(p, 10_000 * ETHER)
        self.deposited = 0  # wei sent into the market
        self.withdrawn = 0  # wei paid out of it
        self.secrets: dict[int, bytes] = {}
        self.finalised: dict[int, int] = {}
        self.nonce = 0
        for p in self.people:  # everyone starts able to play every role
            self._send(p, self.market.deposit, int(Role.SOLVER | Role.VERIFIER | Role.WHISTLEBLOWER), value=20 * ETHER)

    def teardown(self):
        try:
            self._settle_everything()
        finally:
            self.anchor.__exit__(None, None, None)

    def _settle_everything(self):
        """PROTOCOL §8: every task reaches a terminal state through public entry
        points, and once everyone has withdrawn only the jackpot is left."""
        m = self.market
        for attempt in range(40):
            live = [i for i in self._task_ids() if TaskState(m.tasks(i).state) not in TERMINAL_STATES]
            if not live:
                break
            for tid in live:
                self._settle_move(tid)
            boa.env.time_travel(seconds=601 if attempt < 20 else 30 * 86_400)
        stuck = {i: m.tasks(i) for i in self._task_ids() if TaskState(m.tasks(i).state) not in TERMINAL_STATES}
        assert not stuck, stuck
        for p in self.people:
            if (free := m.free_stake(p)) > 0:
                self._send(p, m.unbond, free)
        boa.env.time_travel(seconds=m.unbond_delay())
        for p in self.people:
            self._send(p, m.withdraw_stake)
        for p in self.people + [boa.env.eoa]:
            self._send(p, m.withdraw)
        assert m.total_staked() == m.total_credits() == m.total_escrow() == 0
        assert boa.env.get_balance(m.address) == m.liabilities() == m.pool()

    def _settle_move(self, tid):
        m, task, now = self.market, self.market.tasks(tid), boa.env.timestamp
        state = TaskState(task.state)
        if state == TaskState.DISPUTED:
            self._send(boa.env.eoa, self.arbiter.decide, task.dispute_id, True)
        elif state == TaskState.SUBMITTED and task.verifier != ZERO and now <= task.deadline:
            self._send(task.verifier, m.accept, tid)
        elif state == TaskState.ACCEPTED and task.deadline < now <= task.deadline + 600:
            self._send(task.solver, m.finalise, tid, self.secrets[tid])
        elif state == TaskState.CLAIMED and now <= task.deadline:
            self._send(task.solver, m.submit, tid, keccak(b"final"), CHECKPOINTS, "cid")
        else:
            self._send(self.people[0], m.expire, tid)

    # ── helpers ─────────────────────────────────────────────────────
    def _send(self, who, fn, *args, value=0):
        before = boa.env.get_balance(self.market.address)
        try:
            with boa.env.prank(who):
                result = fn(*args, value=value) if value else fn(*args)
        except BoaError:
            return None
        after = boa.env.get_balance(self.market.address)
        if after > before:
            self.deposited += after - before
        else:
            self.withdrawn += before - after
        for log in self.market.get_logs():
            if type(log).__name__ == "TaskFinalised":
                self.finalised[log.task_id] = self.finalised.get(log.task_id, 0) + 1
        return result

    def _task_ids(self):
        return range(1, self.market.task_count() + 1)

    def _pick_task(self, data, states):
        ids = [i for i in self._task_ids() if TaskState(self.market.tasks(i).state) in states]
        return data.draw(st.sampled_from(ids)) if ids else None

    # ── actions ─────────────────────────────────────────────────────
    @rule(who=st.integers(0, 5), roles=st.integers(1, 7), amount=amounts)
    def deposit(self, who, roles, amount):
        self._send(self.people[who], self.market.deposit, roles, value=amount)

    @rule(who=st.integers(0, 5), amount=amounts)
    def unbond(self, who, amount):
        free = self.market.free_stake(self.people[who])
        self._send(self.people[who], self.market.unbond, min(amount, free) or 1)

    @rule(who=st.integers(0, 5))
    def withdraw_stake(self, who):
        self._send(self.people[who], self.market.withdraw_stake)

    @rule(who=st.integers(0, 5))
    def withdraw(self, who):
        self._send(self.people[who], self.market.withdraw)

    @rule(dt=seconds)
    def wait(self, dt):
        boa.env.time_travel(seconds=dt)

    @rule(who=st.integers(0, 5), payment=amounts, stake=st.integers(0, 3 * ETHER), life=st.sampled_from([60, 3_600, 86_400]))
    def create(self, who, payment, stake, life):
        self._send(self.people[who], self.market.create_task, SPEC_CID, SPEC_HASH, stake,
                   boa.env.timestamp + life, 3_600, STEPS, INTERVAL, value=payment)

    @rule(data=st.data())
    def cancel(self, data):
        if (tid := self._pick_task(data, TaskState.OPEN)) is not None:
            self._send(self.market.tasks(tid).submitter, self.market.cancel, tid)

    @rule(data=st.data(), who=st.integers(0, 5), branch=st.integers(0, 5), segment=st.integers(0, CHECKPOINTS))
    def step(self, data, who, branch, segment):
        """Take one move on a live task; `branch` picks among the moves its state allows."""
        if (tid := self._pick_task(data, TaskState.OPEN | ACTIVE)) is None:
            return
        task = self.market.tasks(tid)
        m = self.market
        match TaskState(task.state):
            case TaskState.OPEN:
                solver = self.people[who]
                if solver == task.submitter:
                    solver = self.people[(who + 1) % len(self.people)]
                self.nonce += 1
                secret = keccak(b"%d" % self.nonce)
                self._send(solver, m.claim, tid, keccak(secret))
                if m.tasks(tid).secret_hash == keccak(secret):
                    self.secrets[tid] = secret
            case TaskState.CLAIMED:
                self.nonce += 1
                self._send(task.solver, m.submit, tid, keccak(b"r%d" % self.nonce), CHECKPOINTS, "cid")
            case TaskState.SUBMITTED if branch < 3:
                self._send(task.verifier, m.accept, tid)
            case TaskState.SUBMITTED:
                self._send(task.verifier, m.challenge, tid, task.proof_root, segment)
            case TaskState.ACCEPTED if branch < 2:
                self._send(self.people[who], m.challenge, tid, task.proof_root, segment)
            case TaskState.ACCEPTED:
                self._send(task.solver, m.finalise, tid, self.secrets[tid])
            case TaskState.DISPUTED if branch < 2:
                self._send(task.solver, m.concede_forced_error, tid, self.secrets[tid])
            case TaskState.DISPUTED:
                self._send(boa.env.eoa, self.arbiter.decide, task.dispute_id, branch % 2 == 0)

    @rule(data=st.data(), who=st.integers(0, 5))
    def expire(self, data, who):
        if (tid := self._pick_task(data, TaskState.OPEN | ACTIVE)) is not None:
            self._send(self.people[who], self.market.expire, tid)

    # ── invariants ──────────────────────────────────────────────────
    @invariant()
    def balance_equals_liabilities_and_the_books_add_up(self):
        m = self.market
        assert boa.env.get_balance(m.address) == m.liabilities() == self.deposited - self.withdrawn
        stakes = [m.accounts(p) for p in self.people]
        assert m.total_staked() == sum(s.bonded + s.unbonding for s in stakes)
        assert m.total_credits() == sum(m.credits(p) for p in self.people + [boa.env.eoa])
        tasks = [m.tasks(i) for i in self._task_ids()]
        assert m.total_escrow() == sum(t.escrow + t.tax for t in tasks)
        assert all(t.escrow == t.tax == 0 for t in tasks if TaskState(t.state) in TERMINAL_STATES)

    @invariant()
    def locked_stake_is_exactly_what_backs_live_work(self):
        m = self.market
        expected = {p: 0 for p in self.people}
        for i in self._task_ids():
            t = m.tasks(i)
            terms = Terms(*m.published(t.terms_id))
            if TaskState(t.state) in ACTIVE:
                expected[t.solver] += t.solver_stake
            if TaskState(t.state) in TaskState.SUBMITTED | TaskState.ACCEPTED | TaskState.DISPUTED and t.verifier != ZERO:
                expected[t.verifier] += terms.verifier_bond
            if t.state == TaskState.DISPUTED and t.challenger != t.verifier:
                expected[t.challenger] += terms.challenge_bond
        for p in self.people:
            s = m.accounts(p)
            assert s.locked == expected[p] and s.locked <= s.bonded

    @invariant()
    def each_task_pays_out_at_most_once(self):
        assert all(n == 1 for n in self.finalised.values())


MarketMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("DTM_STATEFUL_EXAMPLES", "60")), stateful_step_count=50, deadline=None,
    suppress_health_check=list(HealthCheck),  # generation speed varies with load; correctness does not
)
test_market_invariants = MarketMachine.TestCase
