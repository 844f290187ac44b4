"""Model-based test of the dispute game against its Python reference (`offchain.dispute.game`).

Random adversary schedules on real data: the adversary sends wrong moves (wrong side, wrong claim,
invalid proofs), stays silent, moves at its deadline −1 / 0 / +1 or later, moves after the end,
and a stranger front-runs final proofs and calls timeouts. After every step the contract's state
equals the model's (phase, turn start, both clocks, move count) and both accept or reject with the
same reason. The honest side moves only in time; at the end it always wins, within the bound.

Scenario "honest solver": the adversary is the challenger. Scenario "cheater": the adversary is a
solver that fabricated segment 1 and commits one of three traces; the challenger is honest.
Scenario "participant": the adversary is a group participant that sent one wrong element of a
message (the last stage of a 3-stage pipeline); the dispute is over its segment of its group's
task, revealed with `reveal_participant_segment`, and it commits one of four traces.
Besides random schedules, adversaries follow the protocol for N moves and then deviate, so games
reach every final proof; each test asserts which way every game ended (the chain's DisputeEnded
reason equals the model's) and that, over the run, every possible ending occurred.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter

import arbitration_testing as T
import boa
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from participant_testing import bound
from program_testing import STEP

from offchain.chain.suite import TaskState
from offchain.dispute import game as G
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.distributed.group import group_proof_root
from offchain.distributed.stage_program import training_rows
from offchain.ml.commit import merkle_root
from offchain.ml.train import step_trace

TIMES = ("now", "small", "half", "deadline-1", "deadline", "deadline+1", "late")
ADVERSARY_CHALLENGER = ("pick0", "pick1", "pick2", "pick3", "pick_badproof", "pick_wrongroot", "demand",
                        "demand_bad", "link_before", "link_after", "data", "element", "element_wrongroot",
                        "reveal", "timeout", "silence")
#: the traces a cheater of each scenario may commit (the first is the one it ran)
TRACES = {"cheater": ("forged", "honest", "bad_data"), "participant": ("sent", "honest", "recv", "bad_data")}
ADVERSARY_SOLVER = ("reveal", "reveal_bad", "reveal_wrongsegment", "trace_wrongstep", "pick0", "element", "timeout",
                    "silence")
ADVERSARY = {"honest": ADVERSARY_CHALLENGER,
             **{scenario: (*ADVERSARY_SOLVER, *("trace_" + v for v in traces)) for scenario, traces in TRACES.items()}}
STRANGER = ("timeout", "front_run", "pick0", "reveal")
ENDINGS = {G.END_TIMEOUT: "timeout", G.END_LINK: "link", G.END_DATA: "data", G.END_ELEMENT: "element"}


# ------------------------------------------------------------------------------- data of both scenarios


@functools.cache
def honest_steps() -> dict[int, tuple[dict, list]]:
    """The honest solver's state before and trace of every step of segment 1."""
    base = T.honest_play()
    demo, run = base.demo, T.honest_run()
    k = demo.task.checkpoint_interval
    out = {}
    for i in range(k):
        step = k + i
        start = T._state_at(demo, run.result.checkpoints[1].params, k, step)
        out[step] = start, list(step_trace(demo.graph, demo.task, demo.dataset, start, step).trace)
    return out


def honest_traces() -> dict[int, list]:
    """The honest solver's trace of every step of segment 1."""
    return {step: trace for step, (_, trace) in honest_steps().items()}


def _with_id(args: tuple, position: int, dispute_id: int) -> tuple:
    return (*args[:position], dispute_id, *args[position + 1:])


class Runner:
    """Drives the contract and the model side by side."""

    def __init__(self, suite, parties, scenario: str) -> None:
        self.suite, self.parties, self.scenario = suite, parties, scenario
        self.model = G.Game(T.CLOCK, T.EXTENSION)
        self.task_id, self.id, segment = self.open()
        opened = suite.game.disputes(self.id).opened_at
        model_id = self.model.open(opened, self.task_id, parties.solver, parties.verifier, segment)
        assert model_id == self.id
        self.committed: str | None = None        # cheater's trace variant
        self.committed_step: int | None = None
        self.steps = 0
        self.ending: int | None = None             # DisputeEnded.reason, once the game is over

    def open(self) -> tuple[int, int, int]:
        """Post the task and challenge its segment 1: (task id, dispute id, segment)."""
        self.play = T.honest_play() if self.scenario == "honest" else T.cheat_play("honest")
        self.state_roots, self.k, self.pick_index = self.play.state_roots, self.play.task.checkpoint_interval, self.play.pick
        return (*T.open_dispute(self.suite, self.parties, self.play.demo, self.play.checkpoint_roots, 1), 1)

    # -- helpers -----------------------------------------------------------------------------

    @property
    def d(self) -> G.Dispute:
        return self.model.disputes[self.id]

    def compare(self) -> None:
        chain, model = self.suite.game.disputes(self.id), self.d
        assert (chain.phase, chain.turn_start, chain.solver_clock, chain.challenger_clock, chain.moves) == (
            model.phase, model.turn_start, model.solver_clock, model.challenger_clock, model.moves)
        assert self.suite.game.deadline(self.id) == model.deadline
        if model.phase in (G.PICK, G.TRACE, G.PROVE, G.DEMAND):
            assert (chain.first_step, chain.span) == (model.first_step, model.span)
        state = self.suite.market.tasks(self.task_id).state
        if model.phase == G.SOLVER_WON:
            assert state == TaskState.ACCEPTED
        elif model.phase == G.CHALLENGER_WON:
            assert state == TaskState.OPEN
        else:
            assert state == TaskState.DISPUTED

    def advance(self, choice: str, honest_turn: bool) -> None:
        now, deadline = boa.env.timestamp, self.d.deadline or boa.env.timestamp
        target = {
            "now": now, "small": now + 7, "half": now + max(0, (deadline - now) // 2),
            "deadline-1": deadline - 1, "deadline": deadline, "deadline+1": deadline + 1,
            "late": deadline + 5 * T.EXTENSION,
        }[choice]
        if honest_turn and not self.d.over:
            target = min(target, deadline)  # the honest side never lets its clock run out
        if target > now:
            boa.env.time_travel(seconds=target - now)

    def attempt(self, sender: str, kind: str, call, **model_kwargs) -> bool:
        """Run ``call`` on chain and ``kind`` in the model; both must agree. True if it went through."""
        now = boa.env.timestamp
        try:
            if kind == "timeout":
                self.model.timeout(now, self.id)
            else:
                self.model.move(now, self.id, kind, sender, **model_kwargs)
            expected = None
        except G.GameError as error:
            expected = error.reason
        if expected is None:
            with boa.env.prank(sender):
                call()
        else:
            with boa.env.prank(sender), boa.reverts(expected):
                call()
        if expected is None and self.d.over:
            # a final proof ends the game through the checker, a timeout directly (read before any
            # view call replaces the contract's last computation)
            source = self.suite.game if kind == "timeout" else self.prover
            [ended] = T.events(source, "DisputeEnded")
            assert (ended.dispute_id, ended.solver_won, ended.reason) == (self.id, self.d.solver_won, self.d.reason)
            self.ending = ended.reason
        self.compare()
        return expected is None

    # -- moves -------------------------------------------------------------------------------

    def reveal(self, sender: str, variant: str = "valid") -> bool:
        play, game = self.play, self.suite.game
        roots = list(play.state_roots)
        segment = 1
        claim = payload = None
        if variant == "bad":
            roots[-1] = b"\x07" * 32
            payload = "arbitration: endpoints are not the checkpoints"
        elif variant == "wrongsegment":
            segment, claim = 2, "arbitration: wrong segment"
        args = M.reveal_segment_args(self.id, segment, play.task, roots, play.checkpoint_roots)
        return self.attempt(sender, "reveal", lambda: game.reveal_segment(*args), claim_error=claim,
                            payload_error=payload, k=play.task.checkpoint_interval)

    def pick(self, sender: str, index: int, variant: str = "valid") -> bool:
        revealed = [self.state_roots[p] for p in M.dissection_points(self.k)]
        args = list(M.pick_step_args(self.id, revealed, index))
        claim = payload = None
        if variant == "badproof":
            args[3] = b"\x09" * 32
            payload = "arbitration: roots not in the states root"
        elif variant == "wrongroot":
            args[1] = b"\x0a" * 32
            claim = "arbitration: wrong states root"
        return self.attempt(sender, "pick", lambda: self.suite.game.pick_step(*args), claim_error=claim,
                            payload_error=payload, index=index)

    def current_step(self) -> int:
        return self.d.first_step

    def solver_trace(self, variant: str):
        if self.scenario == "honest":
            return honest_traces().get(self.current_step(), honest_traces()[self.play.step])
        return T.cheat_play(variant).trace

    def winning(self) -> P.ProgramProof:
        """The honest challenger's proof against the committed trace."""
        return winning_proof(self.committed or "forged")

    def commit_trace(self, sender: str, variant: str = "honest", wrong_step: bool = False) -> bool:
        trace = self.solver_trace(variant)
        step = self.current_step() + (1 if wrong_step else 0)
        args = M.commit_trace_args(self.id, step, trace)
        claim = "arbitration: wrong step" if wrong_step else None
        went = self.attempt(sender, "trace", lambda: self.suite.game.commit_trace(*args), claim_error=claim)
        if went:
            self.committed, self.committed_step = variant, self.current_step()
        return went

    def committed_trace(self):
        if self.scenario == "honest":
            return honest_traces()[self.committed_step if self.committed_step is not None else self.play.step]
        return T.cheat_play(self.committed or "forged").trace

    def committed_data(self) -> P.ProgramStep:
        """What the challenger knows of the committed step: its trace, and the state before it."""
        if self.scenario == "honest":
            step = self.committed_step if self.committed_step is not None else self.play.step
            state, trace = honest_steps()[step]
            return dataclasses.replace(self.play.step_data(), trace=trace, step=step,
                                       state=[state[name] for name in self.play.demo.graph.param_names])
        return T.cheat_play(self.committed or "forged").step_data()

    def final(self, sender: str, kind: str, wrong_root: bool = False) -> bool:
        """A final proof of ``kind`` built from the committed trace (link_before, link_after, data,
        element, or "winning": the proof the honest challenger finds)."""
        game = self.suite.game.address
        payload = None
        if kind == "winning":
            proof = self.winning()
            method, args = proof.fn, (game, self.id, *proof.args[2:])
            model_kind = proof_kind(proof)
        else:
            method, model_kind, args, payload = self.wrong_proof(kind)
        claim = None
        if wrong_root:
            args = (*args[:2], b"\x0b" * 32, *args[3:])
            claim = "arbitration: wrong trace root"
        self.prover = self.suite.prover(method)
        return self.attempt(sender, model_kind, lambda: getattr(self.prover, method)(*args),
                            claim_error=claim, payload_error=payload)

    def wrong_proof(self, kind: str) -> tuple[str, str, tuple, str]:
        """(method, the model's kind, args, revert reason) of a final proof that fails on the honest
        solver's trace: a link before or after it, a data row or an element."""
        data = self.committed_data()
        game = self.suite.game.address
        program = self.play.program
        if kind == "link_before":  # the step's first state leaf against the state before it
            method, model_kind = "prove_leaf_link", "link"
            args = P.leaf_args(game, self.id, data, program.leaf("state"))
            payload = "arbitration: links hold"
        elif kind == "link_after":
            method, model_kind = "prove_output_link", "link"
            args = P.output_link_args(game, self.id, data)
            payload = "arbitration: links hold"
        elif kind == "data":
            method, model_kind = "prove_leaf_link", "data"
            args = P.leaf_args(game, self.id, data, program.leaf("data_x"), 1)
            payload = "arbitration: data row matches"
        else:
            method, model_kind = "prove_element", "element"
            args = P.element_args(game, self.id, data, program.outputs[1], 3)
            payload = "arbitration: element is consistent"
        return method, model_kind, args, payload

    def demand(self, sender: str, count: int = 8) -> bool:
        node = self.play.program.outputs[0]
        args = P.demand_args(self.suite.game.address, self.id, self.committed_data(), node, 0, count)
        fee = self.suite.game.demand_fee(count)
        return self.attempt(sender, "demand", lambda: self.suite.programs.demand_elements(*args, value=fee),
                            count=count, node=node, start=0)

    def post(self, sender: str) -> bool:
        chain = self.suite.game.disputes(self.id)
        args = M.post_args(self.suite.game.address, self.id, self.committed_trace(), chain.demand_node,
                           chain.demand_start, max(chain.demand_count, 1))
        return self.attempt(sender, "post", lambda: self.suite.checker.post_elements(*args))

    def timeout(self, sender: str) -> bool:
        return self.attempt(sender, "timeout", lambda: self.suite.game.timeout(self.id))

    # -- players -----------------------------------------------------------------------------

    def honest_move(self) -> None:
        """The honest side's correct move (it is its turn and its clock has not run out)."""
        p, d = self.parties, self.d
        if self.scenario == "honest":
            if d.phase == G.REVEAL:
                assert self.reveal(p.solver)
            elif d.phase == G.TRACE:
                assert self.commit_trace(p.solver)
            elif d.phase == G.DEMAND:
                assert self.post(p.solver)
        else:
            if d.phase == G.PICK:
                assert self.pick(p.verifier, self.pick_index)
            elif d.phase == G.PROVE:
                assert self.final(p.verifier, "winning")

    def honest_turn(self) -> bool:
        d = self.d
        if d.over:
            return False
        return d.solver_to_move == (self.scenario == "honest")

    def adversary(self, action: str) -> None:
        p = self.parties
        if self.scenario == "honest":  # the adversary is the challenger
            me = p.verifier
            if action.startswith("pick") and action[4:].isdigit():
                self.pick(me, int(action[4:]))
            elif action == "pick_badproof":
                self.pick(me, 1, "badproof")
            elif action == "pick_wrongroot":
                self.pick(me, 1, "wrongroot")
            elif action == "demand":
                self.demand(me)
            elif action == "demand_bad":
                self.demand(me, count=0)
            elif action in ("link_before", "link_after", "data", "element"):
                self.final(me, action)
            elif action == "element_wrongroot":
                self.final(me, "element", wrong_root=True)
            elif action == "reveal":
                self.reveal(me)
            elif action == "timeout":
                self.timeout(me)
        else:  # the adversary is the cheating solver
            me = p.solver
            if action == "reveal":
                self.reveal(me)
            elif action == "reveal_bad":
                self.reveal(me, "bad")
            elif action == "reveal_wrongsegment":
                self.reveal(me, "wrongsegment")
            elif action.startswith("trace_") and action != "trace_wrongstep":
                self.commit_trace(me, action[len("trace_"):])
            elif action == "trace_wrongstep":
                self.commit_trace(me, TRACES[self.scenario][0], wrong_step=True)
            elif action == "pick0":
                self.pick(me, 0)
            elif action == "element":
                self.final(me, "winning")
            elif action == "timeout":
                self.timeout(me)

    def stranger(self, action: str) -> None:
        me = self.parties.stranger
        if action == "timeout":
            self.timeout(me)
        elif action == "front_run":
            self.final(me, "winning")
        elif action == "pick0":
            self.pick(me, 0)
        else:
            self.reveal(me)

    def finish(self) -> None:
        """Play out: the honest side moves at once, the adversary is silent and timed out."""
        for _ in range(2 * G.MAX_DEMANDS + 10):
            if self.d.over:
                return
            if self.honest_turn():
                self.honest_move()
            else:
                self.advance("deadline+1", honest_turn=False)
                self.timeout(self.parties.stranger)
        raise AssertionError("game did not end")


#: scenario "participant"'s cheater: the last stage of a 3-stage pipeline (it reads rows and sends
#: gradients), one element of a gradient it sent in its step STEP wrong; its segment of the group's
#: task is its own segment STEP, so the model's reveal must map one to the other
PARTICIPANT = "last"


@functools.cache
def participant_trace(variant: str) -> tuple:
    """The cheating participant's trace of its step: "sent" (the one it ran, one sent element
    wrong), "honest" (without that element: its send is not the one the group's mail holds),
    "recv" (computed on a received message other than the mail's) or "bad_data" ("sent" on a row
    the task's data link does not derive)."""
    b = bound(PARTICIPANT, True)
    if variant == "honest":
        return tuple(b.trace())
    if variant == "recv":
        received = [t.clone() for t in b.records[b.sp.rank].received[STEP]]
        received[-1].view(-1)[0] += 1e-2
        return tuple(b.trace(received=received))
    trace = list(b.setup.trace)
    if variant == "bad_data":
        x_node = b.setup.program.leaf("data_x")
        x = trace[x_node].clone()
        x[0] = next(row for row in training_rows(b.spec).x if not torch.equal(row, x[0]))
        trace[x_node] = x
    return tuple(trace)


@functools.cache
def participant_proof(variant: str) -> P.ProgramProof:
    """The honest challenger's proof against the participant's ``variant`` trace (dispute id 1)."""
    b = bound(PARTICIPANT, True)
    trace = list(participant_trace(variant))
    proof = P.find_program_proof("0x" + "00" * 20, 1, b.step(trace=trace), b.setup.after_root(b.setup.trace))
    assert proof is not None
    return proof


class ParticipantRunner(Runner):
    """Scenario "participant": the solver of a group task disputed over the segment of its
    cheating participant, which reveals it from the participant's own proof."""

    def open(self) -> tuple[int, int, int]:
        b = self.b = bound(PARTICIPANT, True)
        task = b.setup.demo.task
        self.k, self.per, self.pick_index = task.checkpoint_interval, task.steps // task.checkpoint_interval, 0
        # the participant's checkpoint after its step is the state it trained to
        self.state_roots = [task.weights_root, b.setup.after_root(b.setup.trace)]
        self.checkpoint_roots = [[t.weights_root] + [bytes(32)] * self.per for t in b.group.participants]
        self.checkpoint_roots[b.sp.rank][1] = self.state_roots[1]
        self.segment = b.group.segment(b.sp.rank, STEP)
        market = self.suite.market
        task_id = market.post(b.group.hash(), group_proof_root(self.checkpoint_roots, b.mail)[1], b.group.checkpoints)
        return task_id, market.challenge(task_id, self.parties.solver, self.parties.verifier, self.segment), self.segment

    def reveal(self, sender: str, variant: str = "valid") -> bool:
        b, roots, segment = self.b, list(self.state_roots), self.segment
        claim = payload = None
        if variant == "bad":
            roots[-1] = b"\x07" * 32
            payload = "arbitration: endpoints are not the checkpoints"
        elif variant == "wrongsegment":
            segment, claim = segment + 1, "arbitration: wrong segment"
        args = M.reveal_participant_segment_args(self.id, segment, b.group.commitments(), b.group.participants,
                                                 roots, self.checkpoint_roots, merkle_root(b.mail))
        return self.attempt(sender, "reveal", lambda: self.suite.game.reveal_participant_segment(*args),
                            claim_error=claim, payload_error=payload, k=self.k, per=self.per)

    def solver_trace(self, variant: str):
        return list(participant_trace(variant))

    def winning(self) -> P.ProgramProof:
        return participant_proof(self.committed or TRACES["participant"][0])


def proof_kind(proof: P.ProgramProof) -> str:
    """The model's name of a final proof: a data row, a link (a leaf or the outputs) or an element."""
    if proof.kind == "leaf" and proof.args[12] != P.NO_ROW:  # `leaf_args`: a data leaf's row opened in the dataset
        return "data"
    return {"leaf": "link", "output": "link", "element": "element"}[proof.kind]


@functools.cache
def winning_proof(variant: str) -> P.ProgramProof:
    """The honest challenger's proof against the cheater's ``variant`` trace (dispute id 1)."""
    play = T.cheat_play(variant)
    proof = P.find_program_proof("0x" + "00" * 20, 1, play.step_data(), play.state_roots[-1])
    assert proof is not None
    return proof


@st.composite
def schedules(draw, scenario: str):
    actions = ADVERSARY[scenario]
    length = draw(st.integers(0, 10))
    steps = []
    for _ in range(length):
        actor = draw(st.sampled_from(["honest", "adversary", "adversary", "stranger"]))
        time = draw(st.sampled_from(TIMES))
        if actor == "adversary":
            steps.append((actor, draw(st.sampled_from(actions)), time))
        elif actor == "stranger":
            steps.append((actor, draw(st.sampled_from(STRANGER)), time))
        else:
            steps.append((actor, "move", time))
    return steps


PROTOCOL_TIMES = ("now", "small", "half", "deadline-1", "deadline")


@st.composite
def deviating(draw, scenario: str):
    """The adversary makes its first N protocol moves in time (the honest side answering), then
    deviates: any random schedule of wrong, late or no moves follows."""
    if scenario != "honest":
        protocol = ["reveal", "trace_" + draw(st.sampled_from(TRACES[scenario]))]
    else:
        protocol = [f"pick{draw(st.integers(0, 3))}", "demand", "demand"]
    follow = draw(st.integers(0, len(protocol)))
    steps = []
    for action in protocol[:follow]:
        steps += [("honest", "move", "small"), ("adversary", action, draw(st.sampled_from(PROTOCOL_TIMES)))]
    return steps + draw(schedules(scenario))


def protocol(*actions: str) -> list:
    """The adversary's protocol moves in time, the honest side answering at once, then silence."""
    return [step for action in actions for step in (("honest", "move", "small"), ("adversary", action, "small"))]


def _run(suite, parties, scenario: str, schedule) -> int:
    """Play one schedule; returns the ending reason."""
    with boa.env.anchor():
        run = (ParticipantRunner if scenario == "participant" else Runner)(suite, parties, scenario)
        opened = run.d.opened_at
        longest = opened + G.max_duration(run.k, T.CLOCK, T.EXTENSION)
        run.compare()
        for actor, action, time in schedule:
            run.advance(time, honest_turn=run.honest_turn())
            if actor == "honest":
                if run.honest_turn():
                    run.honest_move()
            elif actor == "adversary":
                if action != "silence":
                    run.adversary(action)
            else:
                run.stranger(action)
        run.finish()
        assert run.d.solver_won is (scenario == "honest"), f"{scenario}: the honest side lost"
        # a cheater who committed a trace loses to the proof against it; any other game is timed out
        if run.committed is not None and scenario != "honest":
            assert run.ending == G.FINAL[proof_kind(run.winning())]
        else:
            assert run.ending == G.END_TIMEOUT
        assert boa.env.timestamp <= longest
        # the market was resolved exactly once, for this dispute
        assert run.model.resolutions == [(run.task_id, run.id, scenario == "honest")]
        # moves after the end are rejected alike
        run.timeout(parties.stranger)
        run.reveal(parties.solver)
        return run.ending


SETTINGS = settings(max_examples=int(__import__("os").environ.get("ARB_MODEL_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


def _play_all(suite, parties, scenario: str, *explicit) -> Counter:
    """Random and deviating schedules plus the ``explicit`` ones; counts the endings."""
    endings: Counter = Counter()

    @SETTINGS
    @given(schedule=st.one_of(schedules(scenario), deviating(scenario)))
    def play(schedule):
        reason = _run(suite, parties, scenario, schedule)
        event(f"ended by {ENDINGS[reason]}")
        endings[ENDINGS[reason]] += 1

    for schedule in explicit:
        play = example(schedule=schedule)(play)
    play()
    return endings


def test_model__honest_solver_beats_any_challenger(suite, parties):
    endings = _play_all(suite, parties, "honest", protocol("pick1", "demand"), [])
    assert set(endings) == {"timeout"}, endings


@pytest.mark.parametrize("scenario", list(TRACES))
def test_model__honest_challenger_beats_any_cheater(suite, parties, scenario):
    endings = _play_all(suite, parties, scenario, [],
                        *(protocol("reveal", "trace_" + v) for v in TRACES[scenario]))
    assert set(endings) == set(ENDINGS.values()), endings


@pytest.mark.parametrize("scenario", ["honest", *TRACES])
def test_model__silent_adversary_deadline_edges(suite, parties, scenario):
    """Deterministic edges: the adversary moves at deadline −1 / 0 / +1 in turn."""
    schedule = []
    for time in ("deadline-1", "deadline", "deadline+1"):
        schedule += [("honest", "move", "small"), ("adversary", "silence", time), ("stranger", "timeout", "now")]
    _run(suite, parties, scenario, schedule)


@pytest.mark.parametrize("time", ["deadline-1", "deadline", "deadline+1"])
@pytest.mark.parametrize("scenario", ["honest", *TRACES])
def test_model__adversary_moves_at_deadline_edges(suite, parties, scenario, time):
    """The adversary's protocol move at its deadline −1 / 0 / +1: chain and model agree on whether it is in time."""
    move = "pick1" if scenario == "honest" else "reveal"
    _run(suite, parties, scenario, [("honest", "move", "small"), ("adversary", move, time)])
