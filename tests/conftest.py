"""Shared fixtures: the market suite deployed in titanoboa's in-process EVM."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import boa
import pytest
from eth_abi import encode
from eth_utils import keccak

from offchain.chain.suite import CONTRACTS, DEFAULT_MIN_WINDOW, DEFAULT_UNBOND_DELAY, ETHER, Role, Terms, create_address
from offchain.ml.task import COMMITMENT_TYPES

TEST_CONTRACTS = Path(__file__).parent / "contracts"


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true",
                     help="also run the tests marked slow (soaks, exhaustive and fuzzed cases)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
boa.interpret.set_search_paths([str(CONTRACTS)])

SPEC_CID = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
PAYMENT = 10 * ETHER
SOLVER_STAKE = 3 * ETHER
TRAIN_WINDOW = 3_600
STEPS = 100
INTERVAL = 10


def commitments(steps: int = STEPS, interval: int = INTERVAL) -> tuple:
    """A task's `TrainingTask.commitments()` with the given schedule."""
    return (keccak(b"spec"), keccak(b"graph"), keccak(b"data"), 100, keccak(b"weights"), 7, 8, steps, interval)


def spec_hash(values: tuple) -> bytes:
    return keccak(encode(COMMITMENT_TYPES, values))


SPEC_HASH = spec_hash(commitments())
CHECKPOINTS = STEPS // INTERVAL + 1
PROOF_ROOT = keccak(b"proof")
PROOF_CID = "QmProof"
SECRET = keccak(b"solver secret")

NEVER_FORCED = Terms(forced_error_ppm=0)
# a forced error on every task, with tax and minimum payment that keep jackpot payouts below the tax
ALWAYS_FORCED = Terms(forced_error_ppm=1_000_000, tax_ppm=100_000, min_payment=4 * ETHER)


def latest_block_hash() -> bytes:
    """The newest block hash a call can read (that of the block before its own)."""
    return bytes(next(iter(boa.env.evm.patch.prev_hashes)))


def next_block() -> None:
    """Mine to the next block without moving the clock (a draw reads an earlier block). The block
    just left gets a hash of its own, as on a real chain, unknown to any call made in it."""
    patch = boa.env.evm.patch
    left = patch.block_number
    older = list(patch.prev_hashes)[:255]
    patch.prev_hashes = [keccak(b"block %d" % left), *older, *[b"\0" * 32] * (255 - len(older))]
    patch.block_number = left + 1


@functools.cache
def load_test_contract(name: str):
    return boa.load_partial(str(TEST_CONTRACTS / f"{name}.vy"))


@functools.cache
def load_market():
    return boa.load_partial(str(CONTRACTS / "Market.vy"))


def deploy_suite(terms: Terms = NEVER_FORCED, unbond_delay: int = DEFAULT_UNBOND_DELAY,
                 min_window: int = DEFAULT_MIN_WINDOW):
    """Deploy the test arbiter bound to the address the market will get."""
    deployer = boa.env.eoa
    nonce = boa.env.evm.vm.state.get_nonce(bytes.fromhex(deployer[2:]))
    arbiter = load_test_contract("ManualArbiter").deploy(create_address(deployer, nonce + 1))
    market = load_market().deploy(arbiter.address, unbond_delay, terms.as_tuple(), min_window)
    return market, arbiter


@dataclass
class Actors:
    owner: str
    submitter: str
    solver: str
    verifier: str
    whistleblower: str
    stranger: str


@pytest.fixture
def isolated_evm():
    with boa.env.anchor():
        yield


@pytest.fixture
def terms() -> Terms:
    return NEVER_FORCED


@pytest.fixture
def suite(isolated_evm, terms):
    return deploy_suite(terms)


@pytest.fixture
def market(suite):
    return suite[0]


@pytest.fixture
def arbiter(suite):
    return suite[1]


@pytest.fixture
def actors(market) -> Actors:
    names = ["submitter", "solver", "verifier", "whistleblower", "stranger"]
    accounts = {name: boa.env.generate_address(name) for name in names}
    for address in [*accounts.values(), boa.env.eoa]:
        boa.env.set_balance(address, 1_000 * ETHER)
    return Actors(owner=boa.env.eoa, **accounts)


@pytest.fixture
def staked(market, actors) -> Actors:
    """Solver, verifier and whistleblower have staked for their roles."""
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER, value=10 * ETHER)
    with boa.env.prank(actors.verifier):
        market.deposit(Role.VERIFIER, value=10 * ETHER)
    with boa.env.prank(actors.whistleblower):
        market.deposit(Role.WHISTLEBLOWER, value=10 * ETHER)
    return actors


class Flow:
    """Drives one task through the lifecycle, step by step."""

    def __init__(self, market, arbiter, actors: Actors):
        self.market, self.arbiter, self.actors = market, arbiter, actors

    def create(self, *, payment: int = PAYMENT, expires_in: int = 86_400, sender: str | None = None,
               stake: int = SOLVER_STAKE) -> int:
        with boa.env.prank(sender or self.actors.submitter):
            return self.market.create_task(
                SPEC_CID, commitments(), stake, boa.env.timestamp + expires_in, TRAIN_WINDOW, value=payment,
            )

    def draw(self, task_id: int) -> None:
        """Anyone draws, in the next block, the randomness the last claim or proof committed to."""
        next_block()
        with boa.env.prank(self.actors.stranger):
            self.market.draw(task_id)

    def claim(self, task_id: int, secret: bytes = SECRET, draw: bool = True) -> None:
        with boa.env.prank(self.actors.solver):
            self.market.claim(task_id, keccak(secret))
        if draw:
            self.draw(task_id)

    def submit(self, task_id: int, root: bytes = PROOF_ROOT, draw: bool = True) -> None:
        with boa.env.prank(self.actors.solver):
            self.market.submit(task_id, root, CHECKPOINTS, PROOF_CID)
        if draw:
            self.draw(task_id)

    def accept(self, task_id: int) -> None:
        with boa.env.prank(self.actors.verifier):
            self.market.accept(task_id)

    def finalise(self, task_id: int, secret: bytes = SECRET) -> None:
        boa.env.time_travel(seconds=self.terms(task_id).whistle_window + 1)
        with boa.env.prank(self.actors.solver):
            self.market.finalise(task_id, secret)

    def challenge(self, task_id: int, challenger: str, segment: int = 0) -> int:
        with boa.env.prank(challenger):
            return self.market.challenge(task_id, self.task(task_id).proof_root, segment)

    def task(self, task_id: int):
        return self.market.tasks(task_id)

    def terms(self, task_id: int) -> Terms:
        return Terms(*self.market.published(self.task(task_id).terms_id))

    def to_state(self, state: str) -> int:
        """A fresh task walked forward to `state` (open, claimed, submitted, accepted)."""
        order = ["open", "claimed", "submitted", "accepted"]
        task_id = self.create()
        steps = [self.claim, self.submit, self.accept]
        for step in steps[: order.index(state)]:
            step(task_id)
        return task_id


@pytest.fixture
def flow(market, arbiter, staked) -> Flow:
    return Flow(market, arbiter, staked)


ACTOR_NAMES = ("submitter", "solver", "verifier", "whistleblower", "stranger")


def books(market, actors: Actors) -> dict[str, int]:
    """Every amount the market keeps for the actors (credit, bonded and locked stake), the jackpot
    pool and the escrow: compare two snapshots with `assert_moved`."""
    out = {"pool": market.pool(), "escrow": market.total_escrow()}
    for name in ACTOR_NAMES:
        address = getattr(actors, name)
        stake = market.accounts(address)
        out |= {f"{name}.credit": market.credits(address), f"{name}.bonded": stake.bonded,
                f"{name}.locked": stake.locked}
    return out


def assert_moved(before: dict[str, int], after: dict[str, int], **deltas: int) -> None:
    """Exactly the named amounts moved (`solver__bonded=-x` for "solver.bonded"), nothing else."""
    moved = {key: after[key] - before[key] for key in after if after[key] != before[key]}
    assert moved == {key.replace("__", "."): delta for key, delta in deltas.items() if delta}


def assert_solvent(market, forced: int = 0) -> None:
    """PROTOCOL §7: the balance is exactly the liabilities, plus any ether `forced` in."""
    assert boa.env.get_balance(market.address) == market.liabilities() + forced


def events(contract, name: str) -> list:
    """Events named `name` emitted by `contract` in the last call."""
    return [log for log in contract.get_logs() if type(log).__name__ == name]


def check_deadline_boundaries(flow: Flow, state: str, sender: str, move, reason: str) -> None:
    """`move(task_id)` by `sender` works one second before and at the task's deadline, and
    reverts with `reason` one second after it (PROTOCOL §7: chess-clock gaming at the deadline)."""
    for offset, allowed in [(-1, True), (0, True), (1, False)]:
        task_id = flow.to_state(state)
        boa.env.time_travel(seconds=flow.task(task_id).deadline - boa.env.timestamp + offset)
        with boa.env.prank(sender):
            if allowed:
                move(task_id)
            else:
                with boa.reverts(reason):
                    move(task_id)
