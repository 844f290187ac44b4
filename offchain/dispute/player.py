"""Playing the dispute game from a worker: the solver defends its proof, the challenger prosecutes.

Both sides are driven by the game's state on chain (whose turn it is, which
phase), so a restarted worker simply picks the game up again. The solver
re-derives everything it needs from its own checkpoints, bitwise as it trained;
the challenger replays from the solver's checkpoints to pick the step and checks
every node of the solver's trace against the on-chain judge's rule.
"""

from __future__ import annotations

from typing import Any

import torch

from offchain.chain.client import Market, TaskView
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.dispute.program_moves import ProgramStep, find_program_proof
from offchain.dispute.game import DEMAND, PARTIALS, PICK, PROVE, REVEAL, SUM_PICK, TRACE
from offchain.dispute.status import ENDED
from offchain.dispute.trace_store import StreamedTrace, TraceWriter
from offchain.ml import Checkpoint, DemoTask, ProofDocument
from offchain.ml.train import replay, segment_state_roots, step_trace
from offchain.storage import MAX_ARTIFACT_BYTES, ContentStore



class TaskSteps:
    """A task's steps as a dispute over its proof plays them: states from the proof's own
    checkpoints, replayed on the thread count the proof was trained with. A group task's
    participant has the same face (`offchain.distributed.group_proof.ParticipantSteps`)."""

    def __init__(self, store: ContentStore, bundle: DemoTask, proof: ProofDocument, threads: int = 1) -> None:
        """``threads``: the intra-op thread count the proof was trained with (a solver's replay of
        its own run is bitwise only with the same count)."""
        self.store, self.bundle, self.proof, self.threads = store, bundle, proof, threads
        self.task, self.program = bundle.task, bundle.graph.program

    def segment(self, segment: int) -> int:
        """The task's own segment that the market's ``segment`` is."""
        return segment

    def checkpoint(self, index: int) -> dict[str, torch.Tensor]:
        blob = self.store.cat(self.proof.checkpoint_cids[index], max_size=MAX_ARTIFACT_BYTES)
        return Checkpoint.from_bytes(blob, self.bundle.spec, index, self.proof.checkpoint_interval).params

    def segment_roots(self, segment: int) -> list[bytes]:
        """State roots of an honest replay of `segment` from the proof's own checkpoint."""
        b = self.bundle
        return segment_state_roots(b.graph, b.task, b.dataset, self.checkpoint(segment), segment,
                                   num_threads=self.threads)

    def reveal_args(self, dispute_id: int, segment: int, roots: list[bytes]) -> tuple:
        """`reveal_segment` with ``roots``, its end the one this proof committed to."""
        roots = roots[:-1] + [self.proof.checkpoint_roots[segment + 1]]
        return "reveal_segment", M.reveal_segment_args(dispute_id, segment, self.task, roots,
                                                       list(self.proof.checkpoint_roots))

    def state_at(self, step: int) -> dict[str, torch.Tensor]:
        b, k = self.bundle, self.task.checkpoint_interval
        first = step - step % k
        state = self.checkpoint(step // k)
        return replay(b.graph, b.task, b.dataset, state, first, step - first, num_threads=self.threads) \
            if step > first else state

    def trace(self, step: int, on_node) -> None:
        """Step ``step`` from the proof's checkpoint, every node output handed to ``on_node``."""
        b = self.bundle
        step_trace(b.graph, b.task, b.dataset, self.state_at(step), step, num_threads=self.threads, on_node=on_node)

    def step_data(self, trace, step: int, *, with_state: bool = False) -> ProgramStep:
        if not with_state:
            return ProgramStep(self.task, self.program, trace, step)
        b, state = self.bundle, self.state_at(step)
        return ProgramStep(b.task, self.program, trace, step, [state[name] for name in b.graph.param_names],
                           b.graph.hyper, b.dataset.x, b.dataset.y)


class DisputePlayer:
    """One side of one dispute over ``steps`` (:class:`TaskSteps`, or a group participant's); `play`
    makes the move that is due, if any, and says what it did."""

    def __init__(self, market: Market, store: ContentStore, steps) -> None:
        self.market, self.store, self.steps = market, store, steps
        self.game = market.arbiter
        self.me = market.account.address

    def dispute(self, dispute_id: int) -> dict[str, Any]:
        return self.market.read(self.game, "disputes", dispute_id)

    def reduction(self, dispute_id: int) -> dict[str, Any]:
        """The dissection inside a reduction (`Arbitration.reductions`)."""
        return self.market.read(self.game, "reductions", dispute_id)

    def play(self, task: TaskView) -> str | None:
        """End the game if the opponent's clock ran out, else make this side's move if it is due."""
        dispute_id = task.dispute_id
        d = self.dispute(dispute_id)
        if d["phase"] in ENDED:
            return None
        if (done := self.claim_timeout(dispute_id)) or self.market.read(self.game, "to_move", dispute_id) != self.me:
            return done
        return self.move(dispute_id, d)

    def move(self, dispute_id: int, d: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def claim_timeout(self, dispute_id: int) -> str | None:
        waiting_on = self.market.read(self.game, "to_move", dispute_id)
        if waiting_on != self.me and self.market.now() > self.market.read(self.game, "deadline", dispute_id):
            self.market.transact("timeout", dispute_id, contract=self.game)
            return "claimed the timeout"
        return None

    def publish_trace(self, step: int) -> StreamedTrace:
        """Re-derive the trace of ``step``, publishing each node output as it is computed (none
        is held longer than the step needs it); the published trace."""
        writer = TraceWriter(self.store)
        self.steps.trace(step, writer.add)
        return StreamedTrace(self.store, *writer.finish())

    def committed_trace(self, dispute_id: int, d: dict[str, Any]) -> StreamedTrace:
        """The solver's trace as committed in this dispute, read from the store node by node."""
        events = self.game.events.TraceCommitted().get_logs(
            from_block=self.market.deployment.block, argument_filters={"dispute_id": dispute_id})
        return StreamedTrace(self.store, events[-1]["args"]["trace_cid"], d["trace_root"])


class Defence(DisputePlayer):
    """The solver: reveal the segment's state roots, then the trace of the picked step."""

    def move(self, dispute_id: int, d: dict[str, Any]) -> str | None:
        segment = d["segment"]
        if d["phase"] == REVEAL:
            fn, args = self.steps.reveal_args(dispute_id, segment, self.steps.segment_roots(self.steps.segment(segment)))
            self.market.transact(fn, *args, contract=self.game)
            return f"revealed the state roots of segment {segment}"
        if d["phase"] == TRACE:
            trace = self.publish_trace(d["first_step"])
            args = M.commit_trace_args(dispute_id, d["first_step"], trace)
            self.market.transact("commit_trace", *args, trace.cid, contract=self.game)
            return f"committed the trace of step {d['first_step']} ({trace.cid})"
        # later moves read the trace this solver published, as its challenger does
        if d["phase"] == DEMAND:
            trace = self.committed_trace(dispute_id, d)
            args = M.post_args(self.game.address, dispute_id, trace, d["demand_node"], d["demand_start"],
                               d["demand_count"])
            self.market.transact("post_elements", *args, contract=self.market.checker)
            return f"posted elements of node {d['demand_node']}"
        if d["phase"] == PARTIALS:
            r = self.reduction(dispute_id)
            trace = self.committed_trace(dispute_id, d)
            partials = P.reduction_call(self.steps.step_data(trace, d["first_step"]), r["node"], r["index"]).partials()
            args = M.post_partials_args(dispute_id, r["node"], r["first"], r["chunks"], partials)
            self.market.transact("post_partials", *args, contract=self.game)
            return f"posted {len(args[3])} partials of node {r['node']} element {r['index']} (chunks from {r['first']})"
        return f"cannot play phase {d['phase']} (segments longer than 256 steps are not played by this worker)"


class Prosecution(DisputePlayer):
    """The challenger: pick the first interval its replay disagrees with, then prove the step wrong."""

    NOTHING_TO_PROVE = "the solver's step is consistent: nothing to prove"

    def move(self, dispute_id: int, d: dict[str, Any]) -> str | None:
        if d["phase"] == PICK:
            revealed = self._revealed(dispute_id)
            mine = self.steps.segment_roots(self.steps.segment(d["segment"]))
            points = M.dissection_points(d["span"])
            ours = [mine[p] for p in points]
            index = next((i for i in range(len(points) - 1) if ours[i + 1] != revealed[i + 1]), len(points) - 2)
            self.market.transact("pick_step", *M.pick_step_args(dispute_id, revealed, index), contract=self.game)
            return f"picked interval {index} (step {d['first_step'] + points[index]})"
        if d["phase"] == PROVE:
            return self._prove(dispute_id, d)
        if d["phase"] == SUM_PICK:
            r = self.reduction(dispute_id)
            trace = self.committed_trace(dispute_id, d)
            total = r["total"]
            top = total["top"] if hasattr(total, "keys") else total[2]
            args = (self.game.address, dispute_id)
            rest = (r["node"], r["index"], self._posted(dispute_id), r["first"], r["chunks"], not r["picked"], top)
            answer = P.answer_partials(*args, self.steps.step_data(trace, d["first_step"]), *rest)
            if answer is None:
                return self.NOTHING_TO_PROVE
            contract = self.game if answer.contract == "game" else getattr(self.market, answer.contract)
            self.market.transact(answer.function, *answer.args, contract=contract)
            return f"{'picked' if answer.kind == 'pick' else 'proved'} {answer.detail}"
        return None

    def _prove(self, dispute_id: int, d: dict[str, Any]) -> str:
        """The first leaf, output or element of the solver's trace of its program's step that the
        chain can prove wrong (`program_moves.find_program_proof`), proven through the
        ProgramLinkChecker or the ProgramChecker (or the dissection of its reduction opened)."""
        data = self.steps.step_data(self.committed_trace(dispute_id, d), d["first_step"], with_state=True)
        proof = find_program_proof(self.game.address, dispute_id, data, d["state_after"])
        if proof is None:
            return self.NOTHING_TO_PROVE
        self.market.transact(proof.fn, *proof.args, contract=getattr(self.market, proof.contract))
        if proof.kind == "reduction":
            return f"opened the reduction of node {proof.args[5]} element {proof.args[6]}"
        return f"proved {proof.kind} ({proof.fn})"

    def _posted(self, dispute_id: int) -> list[tuple[int, int, int]]:
        events = self.game.events.PartialsPosted().get_logs(
            from_block=self.market.deployment.block, argument_filters={"dispute_id": dispute_id})
        return [(p["x"], p["abs_sum"], p["top"]) if hasattr(p, "keys") else tuple(p)
                for p in events[-1]["args"]["partials"]]

    def _revealed(self, dispute_id: int) -> list[bytes]:
        events = self.game.events.StatesRevealed().get_logs(
            from_block=self.market.deployment.block, argument_filters={"dispute_id": dispute_id})
        return list(events[-1]["args"]["state_roots"])

