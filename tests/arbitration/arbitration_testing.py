"""Shared helpers of the dispute-game tests: the game deployed against a stand-in market
(`MarketStandIn.vy`: the market's `dispute_view` and `resolve`, verdicts recorded), a task walked
to a dispute with real training data, and the data of honest and cheating solvers."""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

import boa
import torch
from eth_utils import keccak

from offchain.chain.suite import CONTRACTS, ETHER
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.ml import cheats
from offchain.ml.commit import merkle_root
from offchain.ml.artifacts import digits_dataset, synthetic_dataset
from offchain.ml.demo import DemoTask, mlp_task
from offchain.ml.exporter import mlp_preset
from offchain.ml.program_training import ProgramTraining
from offchain.ml.program import trace_roots
from offchain.ml.train import replay, segment_state_roots, step_trace

HERE = Path(__file__).parent
boa.interpret.set_search_paths([str(CONTRACTS)])

CLOCK = 3_600
EXTENSION = 600
# why a game ended (Arbitration END_*) and whether the market is told it was proven
END_TIMEOUT, END_LINK, END_DATA, END_ELEMENT, END_CHUNK, END_FOLD = 1, 2, 3, 4, 5, 6


@functools.cache
def _load(path: str):
    return boa.load_partial(path)


def judge_deployer():
    return _load(str(CONTRACTS / "Judge.vy"))


def deploy_judge():
    """PointwiseJudge, then the Judge that forwards the enclosure ops to it."""
    return judge_deployer().deploy(_load(str(CONTRACTS / "PointwiseJudge.vy")).deploy().address)


def checker_deployer():
    return _load(str(CONTRACTS / "ProofChecker.vy"))


def program_checker_deployer():
    return _load(str(CONTRACTS / "ProgramChecker.vy"))


def program_links_deployer():
    return _load(str(CONTRACTS / "ProgramLinkChecker.vy"))


def program_reducer_deployer():
    return _load(str(CONTRACTS / "ProgramReductionChecker.vy"))


def row_judge_deployer():
    return _load(str(CONTRACTS / "ProgramRowJudge.vy"))


def deploy_program_judge(judge):
    """ProgramIndex and ProgramNonlinearJudge, then the ProgramJudge over them and ``judge`` (the
    elementwise rules)."""
    index_map = _load(str(CONTRACTS / "ProgramIndex.vy")).deploy()
    nonlinear = _load(str(CONTRACTS / "ProgramNonlinearJudge.vy")).deploy()
    return _load(str(CONTRACTS / "ProgramJudge.vy")).deploy(index_map.address, judge.address, nonlinear.address)


def game_deployer():
    return _load(str(CONTRACTS / "Arbitration.vy"))


def reader_deployer():
    return _load(str(CONTRACTS / "TensorReader.vy"))


def market_deployer():
    """The stand-in market (tests/arbitration/MarketStandIn.vy)."""
    return _load(str(HERE / "MarketStandIn.vy"))


def stub_judge_deployer():
    return _load(str(HERE / "StubJudge.vy"))


@dataclass
class Suite:
    market: object
    game: object
    checker: object
    judge: object
    reader: object
    programs: object
    program_links: object
    program_reducer: object

    def prover(self, fn: str):
        """The checker whose final proof ``fn`` is: the link checker's links, else the program
        checker's elements and demands."""
        return self.program_links if fn in ("prove_leaf_link", "prove_output_link") else self.programs


def deploy_game_suite(clock: int = CLOCK, extension: int = EXTENSION, judge=None) -> Suite:
    """Judge, TensorReader, ProofChecker, ProgramChecker (over a ProgramJudge), ProgramLinkChecker,
    ProgramReductionChecker (with a ProgramRowJudge), the stand-in market, then the game bound to it."""
    judge = judge or deploy_judge()
    reader = reader_deployer().deploy()
    checker = checker_deployer().deploy(reader.address)
    program_judge = deploy_program_judge(judge)
    programs = program_checker_deployer().deploy(program_judge.address, reader.address)
    program_links = program_links_deployer().deploy(reader.address)
    program_reducer = program_reducer_deployer().deploy(judge.address, reader.address, program_judge.index_map(),
                                                        row_judge_deployer().deploy().address)
    market = market_deployer().deploy()
    game = game_deployer().deploy(market.address, checker.address, programs.address, program_links.address,
                                  program_reducer.address, clock, extension)
    market.bind(game.address)
    return Suite(market, game, checker, judge, reader, programs, program_links, program_reducer)


@dataclass
class Parties:
    submitter: str
    solver: str
    verifier: str
    whistleblower: str
    stranger: str


def make_parties(market=None) -> Parties:
    names = ["submitter", "solver", "verifier", "whistleblower", "stranger"]
    accounts = {name: boa.env.generate_address("arb-" + name) for name in names}
    for address in accounts.values():
        boa.env.set_balance(address, 1_000 * ETHER)
    return Parties(**accounts)


def post_and_challenge(suite: Suite, parties: Parties, spec_hash: bytes, checkpoint_roots: list[bytes],
                       segment: int, by_whistleblower: bool = False) -> tuple[int, int]:
    """The stand-in market posts the task with the solver's proof root, then the verifier (or the
    whistleblower) challenges ``segment``: (task_id, dispute_id)."""
    market = suite.market
    task_id = market.post(spec_hash, merkle_root(checkpoint_roots), len(checkpoint_roots))
    challenger = parties.whistleblower if by_whistleblower else parties.verifier
    dispute_id = market.challenge(task_id, parties.solver, challenger, segment)
    return task_id, dispute_id


def open_dispute(suite: Suite, parties: Parties, demo: DemoTask, checkpoint_roots: list[bytes], segment: int,
                 by_whistleblower: bool = False) -> tuple[int, int]:
    """A task with real commitments disputed at ``segment``: (task_id, dispute_id)."""
    return post_and_challenge(suite, parties, demo.task.hash(), checkpoint_roots, segment, by_whistleblower)


def verdict(suite: Suite, dispute_id: int) -> tuple[bool, bool, int]:
    """(solver_won, proven, number of resolve calls) the market recorded for ``dispute_id``."""
    v = suite.market.verdicts(dispute_id)
    return v.solver_won, v.proven, v.count


# ---------------------------------------------------------------------------------------------
# Real data


@dataclass
class Play:
    """One solver's published run and the moves it makes in a dispute over ``segment``."""

    demo: DemoTask
    checkpoint_roots: list[bytes]
    segment: int
    state_roots: list[bytes]               # the k + 1 roots the solver reveals
    step: int                              # the global step the honest challenger disputes
    pick: int                              # index of that step inside the segment
    trace: list[torch.Tensor]              # the trace the solver commits for that step
    start: dict[str, torch.Tensor]         # the honest state before that step
    extra: dict = field(default_factory=dict)

    @property
    def task(self):
        return self.demo.task

    @property
    def program(self):
        return self.demo.graph.program

    def step_data(self) -> P.ProgramStep:
        """What the challenger knows of the step: the task, the program, the committed trace, the
        state before the step, the hyper table and the dataset."""
        graph, data = self.demo.graph, self.demo.dataset
        return P.ProgramStep(self.task, graph.program, self.trace, self.step,
                             [self.start[name] for name in graph.param_names], graph.hyper, data.x, data.y)


@functools.cache
def tiny_demo() -> DemoTask:
    """The MLP preset's 8-8-3 program on 64 synthetic rows (steps 40, k 4, batch 8)."""
    return mlp_task(8, (8,), 3, synthetic_dataset(64, 8, 3, seed=11), steps=40, k=4, batch_size=8, lr=0.2, seed=7)


def digits_demo(**schedule) -> DemoTask:
    """The MLP preset's 64-32-10 program on the digits (lr 0.1, seed 1; ``steps``, ``k``, ``batch_size``)."""
    return mlp_task(64, (32,), 10, digits_dataset(), lr=0.1, seed=1, **schedule)


@functools.cache
def long_demo() -> DemoTask:
    """A 20-70-3 MLP with batch 72: the second layer (70 terms), the weight gradients and the bias
    gradients (72 rows) are reductions longer than the judge's 64 terms, dissected in a dispute;
    the first layer (20) and the backward product through the logits (3) fit the judge."""
    return mlp_task(20, (70,), 3, synthetic_dataset(128, 20, 3, seed=11), steps=8, k=4, batch_size=72, lr=0.2,
                    seed=7)


DEMOS = {"tiny": tiny_demo, "long": long_demo}


@functools.cache
def honest_run(name: str = "tiny"):
    return cheats.honest_run(DEMOS[name]())


@functools.cache
def cheat_run():
    return cheats.fabricate_segments(tiny_demo(), [1], mode="noise")


def _params(run, index: int) -> dict[str, torch.Tensor]:
    return run.result.checkpoints[index].params


def _state_at(demo: DemoTask, params: dict, first: int, step: int) -> dict:
    if step == first:
        return {n: t.clone() for n, t in params.items()}
    return replay(demo.graph, demo.task, demo.dataset, params, first, step - first)


def _play(demo: DemoTask, run, segment: int, pick: int, roots: list[bytes] | None = None, **extra) -> Play:
    """The play of ``run`` over step ``segment·k + pick``: the honest state roots of the segment
    (unless ``roots``) and the honest trace of that step from the run's checkpoint."""
    params = _params(run, segment)
    roots = roots or segment_state_roots(demo.graph, demo.task, demo.dataset, params, segment)
    k = demo.task.checkpoint_interval
    step = segment * k + pick
    start = _state_at(demo, params, segment * k, step)
    trace = list(step_trace(demo.graph, demo.task, demo.dataset, start, step).trace)
    return Play(demo, list(run.result.roots), segment, roots, step, pick, trace, start, extra)


@functools.cache
def honest_play(segment: int = 1, pick: int = 2, name: str = "tiny") -> Play:
    """An honest solver: real state roots, the real trace of the picked step."""
    return _play(DEMOS[name](), honest_run(name), segment, pick)


def fabricated_play(demo: DemoTask, run, segment: int, trace_kind: str) -> Play:
    """A run whose segment ``segment`` was fabricated: the solver reveals the honest roots of the
    first k steps and its fabricated checkpoint; the honest challenger picks the last step.
    ``trace_kind``: "honest" (the true trace of that step: its update is not the fabricated state,
    an output link mismatch), "forged" (the program's outputs replaced by the fabricated state:
    their elements are inconsistent), "bad_data" (forged, and one data_x row swapped)."""
    k = demo.task.checkpoint_interval
    honest = segment_state_roots(demo.graph, demo.task, demo.dataset, _params(run, segment), segment)
    fabricated = run.result.checkpoints[segment + 1]
    play = _play(demo, run, segment, k - 1, honest[:k] + [fabricated.root], kind=trace_kind)
    program, trace = play.program, play.trace
    if trace_kind in ("forged", "bad_data"):
        for name, node_id in zip(demo.graph.param_names, program.outputs):
            trace[node_id] = fabricated.params[name].clone()
    if trace_kind == "bad_data":
        # a row from elsewhere in the dataset: every later node is honest given it, except the outputs
        x_node = program.leaf("data_x")
        x = trace[x_node].clone()
        x[0] = demo.dataset.x[(int(torch.argmax(x[0])) + 5) % demo.dataset.n_rows]
        trace[x_node] = x
    return play


@functools.cache
def cheat_play(trace_kind: str = "honest") -> Play:
    """The noise-fabricating solver disputed on its bad segment 1 (`fabricated_play`)."""
    return fabricated_play(tiny_demo(), cheat_run(), 1, trace_kind)


def genuine_play(demo: DemoTask, run, segment: int, pick: int) -> Play:
    return _play(demo, run, segment, pick)


def past_the_cap(small: DemoTask, widths: tuple[int, ...], batch: int) -> Play:
    """The honest play of step 0 of ``small`` (an MLP preset task of ``widths``) with a batch past
    the 4096 a task may have, its fields set directly: a reduction over the batch then needs the
    second level of the dissection, which the game supports up to 2^22 terms."""
    input_dim, *hidden, classes = widths
    program, optimizer, _ = mlp_preset(input_dim, tuple(hidden), classes, batch_size=batch, lr=small.task.lr)
    training = ProgramTraining(program, optimizer, small.task.steps, small.task.seed)
    task = copy.copy(small.task)
    object.__setattr__(task, "batch_size", batch)
    object.__setattr__(task, "graph_root", training.root)
    big = dataclasses.replace(small, task=task, spec=training, graph=training)
    return genuine_play(big, cheats.honest_run(big), 0, 0)


def trace_root_of(trace) -> bytes:
    return merkle_root(trace_roots(trace))


def play_to_prove(suite: Suite, parties: Parties, play: Play, challenger: str | None = None) -> tuple[int, int]:
    """Open a dispute and play reveal, pick and trace: the challenger is to prove."""
    task_id, dispute_id = open_dispute(suite, parties, play.demo, play.checkpoint_roots, play.segment)
    challenger = challenger or parties.verifier
    game = suite.game
    with boa.env.prank(parties.solver):
        game.reveal_segment(*M.reveal_segment_args(dispute_id, play.segment, play.task, play.state_roots,
                                                   play.checkpoint_roots))
    revealed = [play.state_roots[p] for p in M.dissection_points(play.task.checkpoint_interval)]
    with boa.env.prank(challenger):
        game.pick_step(*M.pick_step_args(dispute_id, revealed, play.pick))
    with boa.env.prank(parties.solver):
        game.commit_trace(*M.commit_trace_args(dispute_id, play.step, play.trace))
    return task_id, dispute_id


def deployed(cache: list, factory):
    """A contract deployed once and redeployed when a test anchor rolled it back."""
    if not cache or not boa.env.evm.get_code(cache[0].address):
        cache[:] = [factory()]
    return cache[0]


# ---------------------------------------------------------------------------------------------
# Synthetic disputes (no training): arbitrary commitments and roots, for narrowing and clock tests


@dataclass
class Synthetic:
    """A task whose commitments and checkpoint roots are arbitrary hashes: the game never looks
    inside state roots before the final proofs, so narrowing and clocks need nothing else."""

    k: int
    segments: int
    commitments: tuple
    checkpoint_roots: list[bytes]

    @property
    def spec_hash(self) -> bytes:
        from eth_abi import encode

        from offchain.ml.task import COMMITMENT_TYPES

        return keccak(encode(COMMITMENT_TYPES, self.commitments))

    @property
    def steps(self) -> int:
        return self.k * self.segments

    def state_roots(self, segment: int, salt: bytes = b"") -> list[bytes]:
        """k + 1 roots of a segment, endpoints equal to the checkpoints."""
        inner = [keccak(b"state" + salt + segment.to_bytes(8, "big") + i.to_bytes(8, "big")) for i in range(1, self.k)]
        return [self.checkpoint_roots[segment], *inner, self.checkpoint_roots[segment + 1]]


def synthetic(k: int = 8, segments: int = 4) -> Synthetic:
    roots = [keccak(b"checkpoint" + i.to_bytes(8, "big")) for i in range(segments + 1)]
    # checkpoint 0 is the task's initial weights
    commitments = (keccak(b"spec"), keccak(b"graph"), keccak(b"dataset"), 100, roots[0], 7, 8, k * segments, k)
    return Synthetic(k, segments, commitments, roots)


def open_synthetic(suite: Suite, parties: Parties, syn: Synthetic, segment: int = 1,
                   by_whistleblower: bool = False) -> tuple[int, int]:
    return post_and_challenge(suite, parties, syn.spec_hash, syn.checkpoint_roots, segment, by_whistleblower)


def reveal_synthetic(suite: Suite, parties: Parties, syn: Synthetic, dispute_id: int, segment: int = 1):
    roots = syn.state_roots(segment)
    args = M.reveal_segment_args(dispute_id, segment, _SynTask(syn), roots, syn.checkpoint_roots)
    with boa.env.prank(parties.solver):
        suite.game.reveal_segment(*args)
    return [roots[p] for p in M.dissection_points(syn.k)]


class _SynTask:
    """Duck-typed TrainingTask for the move builders."""

    def __init__(self, syn: Synthetic) -> None:
        self.checkpoint_interval = syn.k
        self._c = syn.commitments

    def commitments(self):
        return self._c


def syn_task(syn: Synthetic) -> _SynTask:
    return _SynTask(syn)


def events(contract, name: str) -> list:
    return [log for log in contract.get_logs() if type(log).__name__ == name]


# ---------------------------------------------------------------------------------------------
# A whole dispute, with the gas of every move (used by the e2e test and bench/dispute.py)


def tx_gas(contract, fn: str, sender: str, *args, value: int = 0) -> int:
    """Gas of one transaction: 21,000 + calldata (16 / 4 per byte) + execution (EIP-3529 refund cap)."""
    function = getattr(contract, fn)
    data = function.prepare_calldata(*args)
    with boa.env.prank(sender):
        function(*args, value=value)
    computation = contract._computation
    used = computation.get_gas_used()
    execution = used - min(computation.get_gas_refund(), used // 5)
    return 21_000 + sum(16 if b else 4 for b in data) + execution


def honest_partials(play: Play, node: int, index: int) -> list:
    """What the solver posts in a dissection: the exact partials of its own committed trace."""
    return P.reduction_call(play.step_data(), node, index).partials()


def play_reduction(suite: Suite, parties: Parties, play: Play, dispute_id: int, gas: dict,
                   partials=honest_partials) -> None:
    """After `open_program_reduction`: the solver posts ``partials(play, node, index)`` (grouped as
    the game expects), the challenger answers (`program_moves.answer_partials`), until the
    challenger proves a chunk or the fold or has nothing to prove (then the solver wins on time)."""
    game = suite.game
    data = play.step_data()
    level = 0
    while game.disputes(dispute_id).phase == 9:  # PARTIALS
        r = game.reductions(dispute_id)
        level += 1
        args = M.post_partials_args(dispute_id, r.node, r.first, r.chunks, partials(play, r.node, r.index))
        gas[f"post_partials #{level} ({len(args[3])} partials)"] = tx_gas(game, "post_partials", parties.solver, *args)
        r = game.reductions(dispute_id)
        answer = P.answer_partials(game.address, dispute_id, data, r.node, r.index, args[3], r.first, r.chunks,
                                   not r.picked, r.total[2])
        if answer is None:
            boa.env.time_travel(seconds=game.deadline(dispute_id) - boa.env.timestamp + 1)
            gas["timeout"] = tx_gas(game, "timeout", parties.stranger, dispute_id)
            return
        contract = game if answer.contract == "game" else getattr(suite, answer.contract)
        gas[f"{answer.function} ({answer.detail})"] = tx_gas(contract, answer.function, parties.verifier, *answer.args)


def full_dispute(suite: Suite, parties: Parties, play: Play, *, proof: P.ProgramProof | None = None,
                 demands: list[tuple[int, int, int]] = (), partials=honest_partials) -> dict:
    """Challenge, reveal, pick, trace, optional demand/post pairs, then the challenger's final proof
    (found by `find_program_proof` unless given) or, if it has none, the timeout; an element of a
    long reduction is dissected (`play_reduction`, the solver posting ``partials``). Returns the
    gas of every move by side, the outcome and the number of moves."""
    game, market = suite.game, suite.market
    task = play.task
    task_id = market.post(task.hash(), merkle_root(play.checkpoint_roots), len(play.checkpoint_roots))
    gas: dict[str, int] = {}
    dispute_id = game.dispute_count() + 1
    gas["open_dispute (through the stand-in market)"] = tx_gas(market, "challenge", parties.verifier, task_id,
                                                               parties.solver, parties.verifier, play.segment)
    gas["reveal_segment"] = tx_gas(game, "reveal_segment", parties.solver,
                                   *M.reveal_segment_args(dispute_id, play.segment, task, play.state_roots,
                                                          play.checkpoint_roots))
    revealed = [play.state_roots[p] for p in M.dissection_points(task.checkpoint_interval)]
    gas["pick_step"] = tx_gas(game, "pick_step", parties.verifier, *M.pick_step_args(dispute_id, revealed, play.pick))
    gas["commit_trace"] = tx_gas(game, "commit_trace", parties.solver,
                                 *M.commit_trace_args(dispute_id, play.step, play.trace))
    data = play.step_data()
    fees = 0
    for n, (node, start, count) in enumerate(demands):
        fee = game.demand_fee(count)
        fees += fee
        gas[f"demand_elements #{n + 1}"] = tx_gas(suite.programs, "demand_elements", parties.verifier,
                                                  *P.demand_args(game.address, dispute_id, data, node, start, count),
                                                  value=fee)
        gas[f"post_elements #{n + 1}"] = tx_gas(
            suite.checker, "post_elements", parties.solver,
            *M.post_args(game.address, dispute_id, play.trace, node, start, count))
    d = game.disputes(dispute_id)
    if proof is None:
        proof = P.find_program_proof(game.address, dispute_id, data, d.state_after)
    if proof is not None:
        node = proof.args[5] if proof.kind in ("element", "reduction") else None
        detail = proof.kind if node is None else f"node {node}, {play.program.nodes[node].op}"
        gas[f"{proof.fn} ({detail})"] = tx_gas(getattr(suite, proof.contract), proof.fn, parties.verifier, *proof.args)
        if proof.kind == "reduction":
            play_reduction(suite, parties, play, dispute_id, gas, partials)
    else:
        boa.env.time_travel(seconds=game.deadline(dispute_id) - boa.env.timestamp + 1)
        gas["timeout"] = tx_gas(game, "timeout", parties.stranger, dispute_id)
    d = game.disputes(dispute_id)
    solver_moves = {"reveal_segment", "commit_trace"} | {k for k in gas if k.startswith(("post_elements",
                                                                                         "post_partials"))}
    return {
        "task_id": task_id,
        "dispute_id": dispute_id,
        "solver_won": d.phase == 7,
        "proven": market.verdicts(dispute_id).proven,
        "fees": fees,
        "phase": d.phase,
        "moves": d.moves + (1 if d.phase in (7, 8) else 0),
        "gas": gas,
        "solver_gas": sum(v for k, v in gas.items() if k in solver_moves),
        "challenger_gas": sum(v for k, v in gas.items() if k not in solver_moves and k != "timeout"),
        "total_gas": sum(gas.values()),
    }
