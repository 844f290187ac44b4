"""Whether the dispute game can judge a program task: every element of every node must be openable
and checkable on chain, with the leaf geometry of `contracts/TensorReader.vy` and the bounds of
`contracts/arbitration/structs.vy`, `contracts/ProgramChecker.vy`, `contracts/ProgramLinkChecker.vy` and the judges, and the
checkpoint interval must fit one dissection (the solver worker never sends a `bisect`).

A task outside these limits would let a solver commit wrong values that no final proof can reach,
so it is refused where it is built and posted and where a solver or verifier fetches it.
"""

from __future__ import annotations

from offchain.dispute import program_rules, rows
from offchain.dispute.judge import MAX_LONG_REDUCTION
from offchain.dispute.moves import MAX_OPEN_LEAVES, MAX_POINTS, opening_runs
from offchain.dispute.program_moves import MAX_READ, ON_CHAIN, is_dissected
from offchain.ml.commit import LEAF_BYTES
from offchain.ml.errors import TaskError
from offchain.ml.ops import LEAVES, Node
from offchain.ml.program import Program
from offchain.ml.program_training import ProgramTraining
from offchain.ml.task import TrainingTask

#: mirrors of the on-chain bounds not used elsewhere off chain
MAX_ROW_BYTES = 16_384      # structs.MAX_ROW_BYTES: widest dataset row a data proof compares


class UnjudgeableTask(TaskError):
    """The dispute game could not judge some element of this task; the message names why."""


def _interval_reason(task: TrainingTask) -> str | None:
    k = task.checkpoint_interval
    if k > MAX_POINTS:
        return (f"checkpoint interval {k} exceeds {MAX_POINTS}: disputing a segment would need a "
                f"bisect move that the solver worker does not make")
    return None


def check_judgeable(training: ProgramTraining, task: TrainingTask) -> None:
    """Raise `UnjudgeableTask` with the reason when the dispute game could not judge the task."""
    reason = program_unjudgeable_reason(training.program, task)
    if reason is not None:
        raise UnjudgeableTask(reason)


# ---- training programs (contracts/ProgramChecker.vy, ProgramLinkChecker.vy, docs/arbitration.md §11)

#: mirrors of the program checkers' bounds
MAX_PROGRAM_INPUTS = 8      # structs.MAX_PROGRAM_INPUTS
MAX_PROGRAM_RANK = 8        # structs.MAX_PROGRAM_RANK
MAX_ATTRS = 32              # attrs of a descriptor
MAX_LINK_OPENINGS = 16      # ProgramLinkChecker: trace openings of one output link
MAX_STATE = 1024            # structs.MAX_STATE
MAX_HYPER = 512             # entries of a hyper-table row
MAX_READ_LISTS = 5          # program.MAX_LISTS
# elements of a node whose reads are all checked; larger nodes are checked on a spread sample
EVERY_ELEMENT_UP_TO = 1024
SAMPLED = 64


def _sample(node: Node) -> list[int]:
    """Elements whose reads stand for the node's: all of a small node; else a spread sample, the
    ends and the middle element of every dimension (the fullest windows of a convolution)."""
    n = node.numel
    if n <= EVERY_ELEMENT_UP_TO:
        return list(range(n))
    middle = 0
    for size in node.shape:
        middle = middle * size + size // 2
    return sorted({*range(0, n, max(n // SAMPLED, 1)), n - 1, middle})


def _itemsize(node: Node) -> int:
    return 4 if node.dtype == "f32" else 8  # bool is committed as int64


def program_unjudgeable_reason(program: Program, task: TrainingTask, *, participant: bool = False) -> str | None:
    """The first bound of the program dispute game a program task exceeds, in one line, or None;
    ``participant``: the task is a group participant's (docs/group-tasks.md §4.3), whose program
    receives and sends messages."""
    if (reason := _interval_reason(task)) is not None:
        return reason
    return program_bounds_reason(program, participant=participant)


def program_bounds_reason(program: Program, *, participant: bool = False) -> str | None:
    """The first bound of the dispute game the program itself exceeds, whatever its task (what
    ``dtm model export`` warns of), or None."""
    if max(len(program.outputs), len(program.state)) > MAX_STATE:
        return f"the program's {len(program.state)} state tensors exceed the {MAX_STATE} a state root holds"
    if (openings := len(opening_runs(len(program.nodes), program.outputs))) > MAX_LINK_OPENINGS:
        return (f"the program's {len(program.outputs)} state tensors need {openings} trace openings; an output "
                f"link proof takes {MAX_LINK_OPENINGS}")
    if len(program.hyper_names) > MAX_HYPER:
        return f"{len(program.hyper_names)} hyper-parameters exceed the {MAX_HYPER} a leaf proof opens"
    if (program.receives or program.sends) and not participant:
        return "the program is a group participant's step (it receives or sends messages): a task trains a whole model"
    for node in program.nodes:
        where = program.describe(node.id)
        if node.op == "data_x" and node.numel // node.shape[0] * 4 > MAX_ROW_BYTES:
            return f"dataset rows of {node.numel // node.shape[0]} features exceed the {MAX_ROW_BYTES // 4} a data proof compares"
        if node.op in LEAVES:
            continue
        if node.op not in ON_CHAIN:
            return f"{where} has no one-element rule on chain yet (docs/judge-programs.md §8)"
        if len(node.inputs) > MAX_PROGRAM_INPUTS or len(node.shape) > MAX_PROGRAM_RANK or len(node.attrs) > MAX_ATTRS:
            return f"{where} has more inputs, dimensions or attributes than a descriptor holds"
        ins = [program.nodes[i] for i in node.inputs]
        for index in _sample(node):
            reads = program_rules.element_inputs(node, ins, index)  # two-stage ops: the first stage bounds it
            if len(reads) > MAX_READ_LISTS:
                return f"{where} reads {len(reads)} input lists; the judge takes {MAX_READ_LISTS}"
            dissected = is_dissected(node, reads)
            for position, flat in reads:
                if node.op in rows.ROWS and len(flat) > program_rules.MAX_SOFTMAX_ROW:
                    return (f"{where} has rows of {len(flat)} entries; the judge takes at most "
                            f"{program_rules.MAX_SOFTMAX_ROW}")
                if len(flat) > MAX_LONG_REDUCTION:
                    return (f"{where} reduces {len(flat)} terms; the dissection inside a reduction takes at most "
                            f"{MAX_LONG_REDUCTION}")
                if len(flat) > MAX_READ and not dissected:
                    return (f"{where} reduces {len(flat)} terms; the chain judges at most {MAX_READ} "
                            f"(longer reductions of {node.op} are not dissected yet)")
                # a dissected reduction is read one chunk of MAX_READ terms at a time
                for chunk in range(0, len(flat), MAX_READ):
                    part = flat[chunk:chunk + MAX_READ]
                    leaves = len({i * _itemsize(ins[position]) // LEAF_BYTES for i in part})
                    if leaves > MAX_OPEN_LEAVES:
                        return (f"{where} reads {len(part)} elements of node {ins[position].id} spread over "
                                f"{leaves} leaves; the dispute game opens at most {MAX_OPEN_LEAVES}")
    return None
