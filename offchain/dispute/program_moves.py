"""Calldata of the final proofs over a training program's step (`contracts/ProgramChecker.vy`,
docs/arbitration.md §11), built from the task, the program, the solver's trace of the disputed
step and what the challenger knows (the state before the step, the dataset).

The narrowing moves are those of every task (`offchain.dispute.moves`); a program's trace root is
the Merkle root of its per-node output roots (`offchain.ml.program.trace_roots`: bool outputs are
committed as int64 0/1). Each builder returns the arguments of the contract function it is named
after, structs as tuples, the game's address first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from offchain.dispute import judge as J
from offchain.dispute import program_rules as R
from offchain.dispute.judge import JudgeError
from offchain.dispute import rows
from offchain.dispute.moves import (
    MoveError,
    ReductionMove,
    SolverTrace,
    commitments,
    multiproof,
    opening_runs,
    partial_leaf,
    partial_range,
    pick_partial_args,
    prove_fold_args,
    tensor_opening,
    trace_opening,
)
from offchain.ml.commit import dataset_row_proof, merkle_root, tensor_root
from offchain.ml.ops import DTYPE_CODES, LEAVES, OPS, Node
from offchain.ml.program import Program
from offchain.ml.task import TrainingTask

#: a TensorOpening, DataRow and Merkle proof that a proof kind does not use
NO_OPENING: tuple = ([], [], [])
NO_ROW: tuple = (b"", 0, [])


@dataclass(frozen=True)
class ProgramStep(SolverTrace):
    """What a challenger knows of a disputed program step: the task, the program, the solver's
    trace (every node output in node order), the step, the state before it (state order), the
    task's hyper table and the dataset."""

    task: TrainingTask
    program: Program
    trace: Sequence[torch.Tensor]
    step: int
    state: Sequence[torch.Tensor] = ()
    hyper: torch.Tensor | None = None
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    mail: Sequence[bytes] = ()  # a group participant's: its group's mail leaves (Program.mail)

    def tensor(self, node_id: int) -> torch.Tensor:
        """Node ``node_id``'s output as committed (bool as int64)."""
        t = self.trace[node_id]
        return t.to(torch.int64) if t.dtype == torch.bool else t


def program_commit(program: Program, task: TrainingTask) -> tuple:
    """`ProgramCommit` (nodes_root, outputs_hash, links, hyper_root): hashes to the task's graph field."""
    return (program.nodes_root, program.outputs_hash, program.links, task.hyper_root)


#: the `MailCommit` of a step that neither sends nor receives (prove_leaf_link ignores it)
NO_MAIL = ([], [], 0, 0)


def mail_commit(program: Program) -> tuple:
    """`MailCommit` (sends, inbox, offset, per_step): hashes to the program's links."""
    mail = program.mail
    return NO_MAIL if mail is None else (list(program.sends), list(mail.inbox), mail.offset, mail.per_step)


def descriptor(node: Node) -> tuple:
    """`ProgramDescriptor` (id, op, dtype, inputs, shape, attrs)."""
    return (node.id, OPS[node.op].code, DTYPE_CODES[node.dtype], list(node.inputs), list(node.shape),
            list(node.attrs))


def program_opening(program: Program, ids: Sequence[int]) -> tuple:
    """`ProgramOpening`: the descriptors of nodes ``ids`` proven against the program's nodes_root."""
    ids = sorted(set(ids))
    hashes = [node.hash() for node in program.nodes]
    return (len(program.nodes), [descriptor(program.nodes[i]) for i in ids], multiproof(hashes, ids))


def _flat(tensor: torch.Tensor) -> np.ndarray:
    """C-order values as the rules take them: float32 bit patterns, int64, bool 0/1."""
    t = tensor.detach().contiguous().reshape(-1)
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().view(np.uint32)
    return t.to(torch.int64).numpy()


def element_reads(data: ProgramStep, node_id: int, index: int) -> tuple[list, list[list[int]]]:
    """The reads of element ``index`` of node ``node_id`` (both stages for a two-stage op) and the
    trace's values at them: ``([(position, [flat indices])], values)``."""
    program = data.program
    node = program.nodes[node_id]
    ins = [program.nodes[i] for i in node.inputs]

    def values(reads):
        return [_flat(data.trace[node.inputs[p]])[list(idx)].tolist() for p, idx in reads]

    reads = R.element_inputs(node, ins, index)
    if R.needs_values(node):
        reads = R.element_inputs(node, ins, index, values(reads))
    return reads, values(reads)


def element_args(game: str, dispute_id: int, data: ProgramStep, node_id: int, index: int) -> tuple:
    """`prove_element`: element ``index`` of node ``node_id`` with exactly the input elements the
    index map names (ProgramIndex.element_inputs), each read opened in its input's output."""
    program = data.program
    node = program.nodes[node_id]
    if node.op in LEAVES:
        raise MoveError(f"node {node_id} ({node.op}) is a leaf: prove its link")
    reads, _ = element_reads(data, node_id, index)
    openings = [tensor_opening(data.tensor(node.inputs[p]), idx) for p, idx in reads]
    return (game, dispute_id, data.trace_root, commitments(data.task), program_commit(program, data.task), node_id,
            index, program_opening(program, [node_id, *node.inputs]), trace_opening(data.roots, [node_id, *node.inputs]),
            tensor_opening(data.tensor(node_id), [index]), openings)


def leaf_args(game: str, dispute_id: int, data: ProgramStep, node_id: int, row: int = 0) -> tuple:
    """`prove_leaf_link` for leaf ``node_id``: a state leaf against the state before the step
    (``data.state``), a const leaf against its attrs, the hyper leaf against row ``step`` of the
    hyper table (``data.hyper``), the rng leaf against step_key(seed, step), a data leaf's row
    ``row`` against the dataset (``data.x``, ``data.y``), a group participant's ``recv`` leaf or
    sent message against its group's mail (``data.mail``)."""
    from offchain.ml.train import batch_indices

    program, task = data.program, data.task
    node = program.nodes[node_id]
    opening, outputs, leaf, siblings, data_row = NO_OPENING, [], bytes(32), [], NO_ROW
    position = program.mail_position(node_id)
    if position is not None:
        if not data.mail:
            raise MoveError("the group's mail is needed for a message link")
        index = data.step * program.mail.per_step + position
        leaf, siblings = data.mail[index], multiproof(list(data.mail), [index])
        row = program.sends.index(node_id) if node_id in program.sends else 0
    elif node.op == "state":
        if not data.state:
            raise MoveError("the state before the step is needed for a state link")
        roots = [tensor_root(t) for t in data.state]
        slot = node.attrs[0]
        outputs, leaf, siblings = list(program.outputs), roots[slot], multiproof(roots, [slot])
    elif node.op == "hyper":
        if data.hyper is None:
            raise MoveError("the hyper table is needed for a hyper link")
        width = node.shape[0]
        opening = tensor_opening(data.hyper, range(data.step * width, (data.step + 1) * width))
    elif node.op in ("data_x", "data_y"):
        if data.x is None or data.y is None:
            raise MoveError("the dataset is needed for a data proof")
        index = batch_indices(task.seed, data.step, row + 1, task.dataset_rows)[row]
        width = node.shape[1] if node.op == "data_x" else 1
        opening = tensor_opening(data.tensor(node_id), range(row * width, (row + 1) * width))
        proof = dataset_row_proof(data.x, data.y, index)
        data_row = (proof.x_row, proof.label, list(proof.siblings))
    elif node.op not in ("const", "rng"):
        raise MoveError(f"node {node_id} ({node.op}) is not a leaf")
    return (game, dispute_id, data.trace_root, commitments(task), program_commit(program, task),
            program_opening(program, [node_id]), trace_opening(data.roots, [node_id]), opening, outputs, leaf,
            siblings, row, data_row, mail_commit(program))


def output_link_args(game: str, dispute_id: int, data: ProgramStep) -> tuple:
    """`prove_output_link`: the roots of the program's output nodes (the next state), in state order,
    opened in the runs of `moves.opening_runs`."""
    program = data.program
    runs = opening_runs(len(program.nodes), program.outputs)
    return (game, dispute_id, data.trace_root, commitments(data.task), program_commit(program, data.task),
            list(program.outputs), program_opening(program, [program.outputs[0]]),
            [trace_opening(data.roots, run) for run in runs])


def demand_args(game: str, dispute_id: int, data: ProgramStep, node_id: int, start: int, count: int) -> tuple:
    """`ProgramChecker.demand_elements` (value: `moves.demand_value(count, basefee)`); the solver
    answers with `ProofChecker.post_elements` (`moves.post_args` on the committed tensors)."""
    return (game, dispute_id, data.trace_root, commitments(data.task), program_commit(data.program, data.task),
            program_opening(data.program, [node_id]), start, count)


# ---------------------------------------------------------------------------------------------
# The dissection inside a long reduction of a program node (ProgramReductionChecker)


#: the judge's way of summing each dissectable op's terms (contracts/Judge.vy)
KIND_CODES = {"products": J.OP_MATMUL, "sums": J.OP_SUM_ROWS}


def is_dissected(node: Node, reads: Sequence) -> bool:
    """Whether the chain judges this element through the dissection inside its reduction: a
    float32 linear reduction (`program_rules.DISSECTABLE`) or softmax-family row (`rows.ROWS`)
    with a read longer than the judge's."""
    return ((node.op in R.DISSECTABLE or node.op in rows.ROWS) and node.dtype == "f32"
            and any(len(idx) > MAX_READ for _, idx in reads))


def reduction_call(data: ProgramStep, node_id: int, index: int, values: Sequence | None = None):
    """The whole reduction of element ``index`` of a dissectable node from the trace's values: a
    `judge.LinearCall` (a bias enters as bias * 1.0, last), or a softmax-family row (`rows`);
    ``values``: those of its reads, where already read."""
    program = data.program
    node = program.nodes[node_id]
    if values is None:
        _, values = element_reads(data, node_id, index)
    claimed = int(_flat(data.trace[node_id])[index])
    if node.op in rows.ROWS:
        return rows.row_of(node, values, index, claimed)
    kind, a, b = R.reduction_terms(node, [program.nodes[i] for i in node.inputs], index, values)
    return J.LinearCall(KIND_CODES[kind], a, b, claimed)


def open_reduction_args(game: str, dispute_id: int, data: ProgramStep, node_id: int, index: int) -> tuple:
    """`ProgramReductionChecker.open_program_reduction`: element ``index`` of node ``node_id``."""
    program = data.program
    node = program.nodes[node_id]
    ids = [node_id, *node.inputs]
    return (game, dispute_id, data.trace_root, commitments(data.task), program_commit(program, data.task), node_id,
            index, program_opening(program, ids), trace_opening(data.roots, ids),
            tensor_opening(data.tensor(node_id), [index]))


def chunk_args(game: str, dispute_id: int, data: ProgramStep, node_id: int, index: int, posted: Sequence[tuple],
               leaf: int, first: int, chunks: int) -> tuple:
    """`ProgramReductionChecker.prove_program_chunk`: partial ``leaf`` of the last post covers one
    chunk and is wrong; its terms opened as `ProgramIndex.chunk_inputs` names them (a row's
    entries: `rows.chunk_reads`)."""
    lo, hi = partial_range(first, chunks, leaf)
    if hi - lo != 1:
        raise MoveError("the partial covers more than one chunk: pick it")
    program = data.program
    node = program.nodes[node_id]
    t0 = lo * J.MAX_REDUCTION
    if node.op in rows.ROWS:
        reads = rows.chunk_reads(node, index, t0)
    else:
        _, reads = R.chunk_inputs(node, [program.nodes[i] for i in node.inputs], index, t0)
    openings = [tensor_opening(data.tensor(node.inputs[p]), idx) for p, idx in reads]
    leaves = [partial_leaf(p) for p in posted]
    ids = [node_id, *node.inputs]
    return (game, dispute_id, data.trace_root, commitments(data.task), program_commit(program, data.task),
            program_opening(program, ids), trace_opening(data.roots, ids), leaf, tuple(posted[leaf]),
            multiproof(leaves, [leaf]), openings)


def row_fold_args(game: str, dispute_id: int, data: ProgramStep, node_id: int, index: int,
                  posted: Sequence[tuple]) -> tuple:
    """`ProgramReductionChecker.prove_program_row`: the element against the whole post's totals;
    the element's entry of each input it reads (the row's; or g's and y's)."""
    program = data.program
    node = program.nodes[node_id]
    ids = [node_id, *node.inputs]
    count = 1 if node.op in rows.PIVOTED else 2
    return (game, dispute_id, data.trace_root, commitments(data.task), program_commit(program, data.task),
            program_opening(program, ids), trace_opening(data.roots, ids),
            merkle_root([partial_leaf(p) for p in posted]),
            [tensor_opening(data.tensor(node.inputs[p]), [index]) for p in range(count)])


def answer_partials(game: str, dispute_id: int, data: ProgramStep, node_id: int, index: int,
                    posted: Sequence[tuple], first: int, chunks: int, whole: bool, top: int) -> ReductionMove | None:
    """The honest challenger's answer to the partials ``posted`` over chunks [first, first +
    chunks) of a program node's reduction or row: the first partial that differs from the exact
    one of the solver's trace at the scale (or pivot) the posted overall ``top`` sets (one chunk:
    prove it; several: pick it), else, on the whole reduction, the fold (a linear reduction's
    `prove_fold`, a row's `prove_program_row`); None if nothing is wrong (the claim is within the
    bound)."""
    call = reduction_call(data, node_id, index)
    exact = call.partials(top)
    for i, value in enumerate(posted):
        lo, hi = partial_range(first, chunks, i)
        group = exact[lo:hi]
        expected = None
        if all(p is not None for p in group):
            expected = group[0]
            for p in group[1:]:
                expected = expected + p
        if expected is not None and expected.as_tuple() == tuple(value):
            continue
        if hi - lo == 1:
            return ReductionMove("chunk", chunk_args(game, dispute_id, data, node_id, index, posted, i, first, chunks),
                                 f"chunk {lo}")
        return ReductionMove("pick", pick_partial_args(dispute_id, posted, i), f"chunks {lo}..{hi - 1}")
    if whole and not call.holds(J.Partial(sum(p[0] for p in posted), sum(p[1] for p in posted), top)):
        if data.program.nodes[node_id].op in rows.ROWS:
            return ReductionMove("fold", row_fold_args(game, dispute_id, data, node_id, index, posted), "fold",
                                 "prove_program_row")
        return ReductionMove("fold", prove_fold_args(game, dispute_id, posted), "fold")
    return None


# ---------------------------------------------------------------------------------------------
# The honest challenger's search


#: ops whose one-element rule is on chain (contracts/ProgramJudge.vy and ProgramNonlinearJudge.vy,
#: docs/judge-programs.md §7): every op of the set but the leaves, which are linked, not judged
ON_CHAIN = frozenset(OPS) - frozenset(LEAVES)
MAX_READ = 64               # elements one read of the program index map names (longer: dissected, or not on chain)


@dataclass(frozen=True)
class ProgramProof:
    """A final proof over a program step, or the opening of a dissection: its function and arguments."""

    kind: str               # "leaf", "output", "element", or "reduction" (opens a dissection)
    fn: str
    args: tuple

    @property
    def contract(self) -> str:
        """The checker that takes it: "program_links" (the ProgramLinkChecker) for a leaf or the
        outputs, "programs" (the ProgramChecker) for an element, "program_reducer" for the opening
        of a dissection."""
        checkers = {"leaf": "program_links", "output": "program_links", "reduction": "program_reducer"}
        return checkers.get(self.kind, "programs")


def leaf_root(data: ProgramStep, node: Node) -> bytes | None:
    """The output root the task commits for leaf ``node`` or a message the participant sends
    (None for data leaves, a state leaf without the state and a message without the mail)."""
    from offchain.ml.program import step_key

    position = data.program.mail_position(node.id)
    if position is not None:
        return data.mail[data.step * data.program.mail.per_step + position] if data.mail else None
    if node.op == "state":
        return tensor_root(data.state[node.attrs[0]]) if data.state else None
    if node.op == "const":
        return node.attrs[0].to_bytes(32, "big")
    if node.op == "hyper":
        return tensor_root(data.hyper[data.step]) if data.hyper is not None else None
    if node.op == "rng":
        return tensor_root(torch.tensor(step_key(data.task.seed, data.step), dtype=torch.int64))
    return None


def _wrong_row(data: ProgramStep, node: Node) -> int | None:
    """The first row of a data leaf that is not the derived batch row."""
    from offchain.ml.train import batch_indices

    if data.x is None or data.y is None:
        return None
    task = data.task
    rows = batch_indices(task.seed, data.step, node.shape[0], task.dataset_rows)
    expected = (data.x if node.op == "data_x" else data.y)[rows]
    committed = data.tensor(node.id)
    for row in range(node.shape[0]):
        if not torch.equal(committed[row].view(torch.int32) if committed.dtype == torch.float32 else committed[row],
                           expected[row].view(torch.int32) if expected.dtype == torch.float32 else expected[row]):
            return row
    return None


def _suspects(data: ProgramStep, node: Node) -> list[int]:
    """Elements of ``node`` whose committed value differs from its kernel run on the committed
    inputs (every element when the kernel cannot run)."""
    spec = OPS[node.op]
    try:
        out = spec.build(node)([data.trace[i] for i in node.inputs])
        if spec.group is not None:
            out = out[spec.group]
        mine, theirs = _flat(out), _flat(data.trace[node.id])
        return [int(i) for i in np.flatnonzero(mine != theirs)]
    except Exception:  # noqa: BLE001  (a kernel refusing the committed inputs: look at every element)
        return list(range(node.numel))


def find_program_proof(game: str, dispute_id: int, data: ProgramStep, state_after: bytes) -> ProgramProof | None:
    """The honest challenger's search over the solver's trace: a leaf (or a message a group
    participant sends) that is not what the task commits, the outputs against the revealed state after the step, then, node by node, an
    element the program rules reject whose reads fit the chain, or the opening of the dissection
    of a rejected element of a long linear reduction. None: no proof (the trace is honest, or its
    fault lies where the chain cannot reach yet)."""
    program, roots = data.program, data.roots
    for node in program.nodes:
        if node.op in ("data_x", "data_y"):
            row = _wrong_row(data, node)
            if row is not None:
                return ProgramProof("leaf", "prove_leaf_link", leaf_args(game, dispute_id, data, node.id, row))
        elif node.op in LEAVES or node.id in program.sends:
            expected = leaf_root(data, node)
            if expected is not None and roots[node.id] != expected:
                return ProgramProof("leaf", "prove_leaf_link", leaf_args(game, dispute_id, data, node.id))
    if merkle_root([roots[o] for o in program.outputs]) != state_after:
        return ProgramProof("output", "prove_output_link", output_link_args(game, dispute_id, data))
    for node in program.nodes:
        if node.op in LEAVES or node.op not in ON_CHAIN:
            continue
        ins = [program.nodes[i] for i in node.inputs]
        claimed = _flat(data.trace[node.id])
        for index in _suspects(data, node):
            try:
                reads, values = element_reads(data, node.id, index)
                if is_dissected(node, reads):
                    if J.folds(reduction_call(data, node.id, index, values)):
                        continue
                    return ProgramProof("reduction", "open_program_reduction",
                                        open_reduction_args(game, dispute_id, data, node.id, index))
                if any(len(idx) > MAX_READ for _, idx in reads):
                    continue
                if R.check(node, ins, index, values, int(claimed[index])):
                    continue
            except JudgeError:  # a malformed read (a non-finite input: its producer is the node to prove)
                continue
            return ProgramProof("element", "prove_element", element_args(game, dispute_id, data, node.id, index))
    return None


__all__ = ["KIND_CODES", "NO_MAIL", "NO_OPENING", "NO_ROW", "ON_CHAIN", "ProgramProof", "ProgramStep", "answer_partials", "chunk_args",
           "demand_args", "descriptor", "element_args", "element_reads", "find_program_proof", "is_dissected",
           "leaf_args", "leaf_root", "mail_commit", "open_reduction_args", "output_link_args", "program_commit", "program_opening",
           "reduction_call", "row_fold_args"]
