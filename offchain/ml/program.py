"""Training programs: a whole training step captured from PyTorch, stored as data, executed fast.

A :class:`Program` is the verifiable form of one training step (forward, loss, backward, optimizer
update) of any supported ``torch.nn.Module``: a flat list of :class:`Node` s over the op set of
``offchain/ml/ops.py``. It is produced by ``offchain/ml/capture.py`` (PyTorch's own tracing; the
backward pass comes from autograd) and published as canonical JSON (``dtm-program/1``). Solvers
and verifiers never run the submitter's Python: they parse this file and execute it.

Leaves of a program:

* ``state``  : the training state, in canonical order: parameters, then optimizer state (momentum
  buffers, Adam moments). ``attrs = [index]``. The step's outputs are the next state, same order.
* ``data_x`` / ``data_y``: the batch rows ``(B, D)`` float32 and labels ``(B,)`` int64, exactly as
  the dataset commits them; the model's input shape is a ``view`` of ``data_x``.
* ``hyper``  : the step's scalars ``(H,)`` float32 (learning rate and bias corrections of the
  schedule), row ``step`` of the task's committed hyper-parameter table.
* ``rng``    : the step's random key (int64 scalar), :func:`step_key` of the task seed and the
  step; ``bernoulli`` nodes (dropout masks) hash it with their element index, so the chain can
  re-compute any mask element.
* ``const``  : a constant tensor shipped in the file (scalars of the model, masks, positions);
  ``attrs = [uint256(tensor_root)]`` so the graph root commits to its contents.

``nodes_root`` = ``keccak256(merkle_root(keccak256(descriptor_i)) ‖ uint256(n_nodes))``; a
descriptor is ``abi.encode(id, opcode, dtype, inputs[], shape[], attrs[])``.
``root`` = ``keccak256(abi.encode(nodes_root, outputs_hash))`` with ``outputs_hash`` =
``keccak256(abi.encode(uint256[] outputs))``: the root also names the nodes holding the next state,
so a dispute can link them (and their count, the state's) to the checkpoint after a step.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterator, Sequence

import numpy as np
import torch

# cuBLAS is deterministic only with a fixed workspace (read when CUDA starts): a CUDA solver's replay
# of its own run must be bitwise (docs/proof-of-learning.md)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
from eth_abi import encode as abi_encode

from .commit import keccak256, merkle_root, sized_root, tensor_root
from .errors import GraphError
from .ops import ALIASING, DTYPES, LEAVES, OPS, OUT_KERNELS, Node, build_plan
from .strict_json import canonical_json, check_keys, parse_json_object, strict_int

PROGRAM_FORMAT = "dtm-program/1"
MAX_PROGRAM_BYTES = 64 * 1024 * 1024
MAX_NODES = 1 << 16
MAX_MAIL = 256  # messages a group participant's step receives, and sends (the chain's MailCommit)
MAX_RANK = 8
MAX_INPUTS = 8
MAX_ATTRS = 32
MAX_NUMEL = 1 << 31

DROPOUT_DOMAIN = 2  # separates the step key from every other keccak of (seed, step, ...)


def _deterministic(mode: bool) -> None:
    """Deterministic kernels on or off. (`torch.use_deterministic_algorithms` also sets the
    compiler's flag, importing the whole compiler stack on first use, seconds of a worker's first
    replay; nothing here compiles.)"""
    torch._C._set_deterministic_algorithms(mode)


@contextlib.contextmanager
def execution_context(num_threads: int | None = 1) -> Iterator[None]:
    """Deterministic torch algorithms and a fixed intra-op thread count, restored afterwards.

    The thread count is part of what makes a run bitwise reproducible on one machine (BLAS may
    split reductions differently with more threads), so training and replay must use the same one.
    """
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    _deterministic(True)
    # the numeric contract (docs/judge.md §1): full float32 multiplies, never TF32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        _deterministic(previous_deterministic)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous_tf32


_GLOBAL_GENERATOR = threading.Lock()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global generator seeded with ``seed``, for this thread alone while it builds a
    model (a module's initialisation draws from it; workers on threads of one process may build
    models at once, and each must get its seed's weights)."""
    with _GLOBAL_GENERATOR:
        torch.manual_seed(seed)
        yield


@dataclass
class StepOutput:
    """Result of one step: the next state (state order), per-row losses, optional trace."""

    params: list[torch.Tensor]
    loss_rows: torch.Tensor
    trace: list[torch.Tensor] | None = None


def trace_roots(trace: Sequence[torch.Tensor]) -> list[bytes]:
    """Per-node output roots in node id order (bool outputs are committed as int64 0/1)."""
    return [tensor_root(t if t.dtype != torch.bool else t.to(torch.int64)) for t in trace]


def trace_root(trace: Sequence[torch.Tensor]) -> bytes:
    """Step-trace commitment: Merkle root over the node-output roots in node id order."""
    return merkle_root(trace_roots(trace))


STATE_KINDS = ("param", "buffer", "stat")


@dataclass(frozen=True)
class StateSlot:
    """One tensor of the training state: a parameter, an optimizer buffer (zeros at step 0), or a
    statistic the step updates outside the optimizer (BatchNorm's running mean and variance: from
    the initial weights, like a parameter)."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "param" | "buffer" | "stat"


@dataclass(frozen=True)
class Mail:
    """Where a group participant's messages sit in its group's mail (docs/group-tasks.md §4.1):
    ``per_step`` messages a step in the group's order
    (:func:`offchain.distributed.stage_program.mail_layout`); the step's ``recv`` leaf ``i`` reads
    the message at position ``inbox[i]``, and its ``k``-th send is at ``offset + k``. The mail
    itself (its root) is committed with the group's proof."""

    inbox: tuple[int, ...]
    offset: int
    per_step: int

    def to_json(self) -> dict[str, Any]:
        return {"inbox": list(self.inbox), "offset": self.offset, "per_step": self.per_step}

    @classmethod
    def from_json(cls, obj: Any) -> Mail:
        if not isinstance(obj, dict):
            raise GraphError("mail must be an object")
        check_keys(obj, {"inbox", "offset", "per_step"}, "mail", GraphError)
        per_step = strict_int(obj["per_step"], "mail per_step", 1, MAX_NODES, GraphError)

        def position(value: Any, what: str) -> int:
            return strict_int(value, what, 0, per_step - 1, GraphError)

        inbox = tuple(position(p, "mail position") for p in _list(obj["inbox"], "inbox"))
        return cls(inbox, position(obj["offset"], "mail offset"), per_step)


@dataclass(frozen=True)
class Program:
    """A captured training step (see the module docstring)."""

    nodes: tuple[Node, ...]
    state: tuple[StateSlot, ...]
    outputs: tuple[int, ...]           # next state, in ``state`` order
    loss: int                          # the step's scalar loss
    constants: dict[int, torch.Tensor]
    hyper_names: tuple[str, ...]
    sources: tuple[str, ...] = ()      # model line per node, for messages (not committed)
    meta: dict[str, Any] = field(default_factory=dict)  # model, optimizer, input shape (not committed)
    sends: tuple[int, ...] = ()        # a group participant's sent messages, in the order sent
    mail: Mail | None = None           # where its messages are committed (a participant's task)

    @property
    def nodes_root(self) -> bytes:
        """Sized Merkle root of the node descriptors (what a dispute opens a descriptor in)."""
        return sized_root(merkle_root([node.hash() for node in self.nodes]), len(self.nodes))

    @property
    def outputs_hash(self) -> bytes:
        """``keccak256(abi.encode(uint256[] outputs))``: the nodes of the next state, in state order."""
        return keccak256(abi_encode(["uint256[]"], [list(self.outputs)]))

    @property
    def receives(self) -> int:
        """How many messages the step reads (its ``recv`` leaves)."""
        return sum(node.op == "recv" for node in self.nodes)

    @property
    def links(self) -> bytes:
        """A group participant's step (it sends or receives messages): ``keccak256(abi.encode(
        uint256[] sends, uint256[] inbox, offset, per_step))`` of its :class:`Mail` (zeros while
        unbound); 32 zero bytes for any other step."""
        if not self.sends and self.mail is None and not self.receives:
            return bytes(32)
        mail = self.mail or Mail((), 0, 0)
        return keccak256(abi_encode(["uint256[]", "uint256[]", "uint256", "uint256"],
                                    [list(self.sends), list(mail.inbox), mail.offset, mail.per_step]))

    @property
    def root(self) -> bytes:
        """``keccak256(abi.encode(nodes_root, outputs_hash))``: what a program task names as
        graph_root; a group participant's step appends its ``links``, so its root commits where
        its messages are while the game's program commitment (nodes root and outputs hash) stays
        that of any step."""
        links = self.links
        if links == bytes(32):
            return keccak256(abi_encode(["bytes32", "bytes32"], [self.nodes_root, self.outputs_hash]))
        return keccak256(abi_encode(["bytes32", "bytes32", "bytes32"], [self.nodes_root, self.outputs_hash, links]))

    def mail_position(self, node_id: int) -> int | None:
        """Where node ``node_id`` (a ``recv`` leaf or a sent message) is in a step's mail (None:
        neither, or no mail)."""
        if self.mail is None:
            return None
        if self.nodes[node_id].op == "recv":
            return self.mail.inbox[self.nodes[node_id].attrs[0]]
        return self.mail.offset + self.sends.index(node_id) if node_id in self.sends else None

    def leaf(self, op: str) -> int | None:
        return next((node.id for node in self.nodes if node.op == op), None)

    @property
    def batch_leaf(self) -> int:
        """The ``data_x`` leaf (a group participant's middle stage has none)."""
        node = self.leaf("data_x")
        if node is None:
            raise GraphError("program has no data_x leaf")
        return node

    @property
    def batch_size(self) -> int:
        return self.nodes[self.batch_leaf].shape[0]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(slot.name for slot in self.state if slot.kind == "param")

    def num_params(self) -> int:
        return sum(int(np.prod(slot.shape, dtype=np.int64)) for slot in self.state if slot.kind == "param")

    def work(self) -> dict[str, int]:
        """FLOPs and bytes moved by one step, from the graph (``dtm task quote``)."""
        flops = moved = 0
        for node in self.nodes:
            inputs = [self.nodes[i] for i in node.inputs]
            flops += OPS[node.op].flops(node, inputs)
            if node.op not in LEAVES and node.op != "view":
                moved += 4 * (node.numel + sum(i.numel for i in inputs))
        return {"flops": flops, "bytes": moved, "nodes": len(self.nodes)}

    def describe(self, node_id: int) -> str:
        node = self.nodes[node_id]
        where = self.sources[node_id] if node_id < len(self.sources) and self.sources[node_id] else "?"
        return f"node {node_id} ({node.op}, from {where})"

    # ---------------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROGRAM_FORMAT,
            "nodes": [node.to_json() for node in self.nodes],
            "state": [[slot.name, list(slot.shape), slot.kind] for slot in self.state],
            "outputs": list(self.outputs),
            "loss": self.loss,
            "hyper": list(self.hyper_names),
            "constants": {str(i): base64.b64encode(_le_bytes(t)).decode() for i, t in sorted(self.constants.items())},
            "sources": list(self.sources),
            "meta": self.meta,
        } | ({"sends": list(self.sends)} if self.sends else {}) | ({"mail": self.mail.to_json()} if self.mail else {})

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Program:
        return cls.from_dict(parse_json_object(data, "program", MAX_PROGRAM_BYTES, GraphError))

    @classmethod
    def from_dict(cls, obj: Any) -> Program:
        """Strict parse of untrusted bytes: every node is checked by :func:`validate`."""
        check_keys(obj, {"format", "nodes", "state", "outputs", "loss", "hyper", "constants", "sources", "meta"}
                   | ({"sends", "mail"} & obj.keys()), "program", GraphError)
        if obj["format"] != PROGRAM_FORMAT:
            raise GraphError(f"program format must be {PROGRAM_FORMAT!r}")
        raw_nodes = obj["nodes"]
        if not isinstance(raw_nodes, list) or not 0 < len(raw_nodes) <= MAX_NODES:
            raise GraphError(f"program needs 1..{MAX_NODES} nodes")
        nodes = tuple(_parse_node(i, raw) for i, raw in enumerate(raw_nodes))
        state = []
        for raw in _list(obj["state"], "state"):
            if not (isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], str) and raw[2] in STATE_KINDS):
                raise GraphError("state entries are [name, shape, 'param'|'buffer'|'stat']")
            state.append(StateSlot(raw[0], _shape(raw[1], "state shape"), raw[2]))
        constants = {}
        raw_constants = obj["constants"]
        if not isinstance(raw_constants, dict):
            raise GraphError("constants must be an object")
        for key, text in raw_constants.items():
            if not key.isdigit() or not isinstance(text, str) or int(key) >= len(nodes):
                raise GraphError(f"constant {key!r} is malformed")
            node = nodes[int(key)]
            constants[node.id] = _from_le_bytes(_b64(text), node)
        sources = tuple(str(s) for s in _list(obj["sources"], "sources"))
        hyper = tuple(str(h) for h in _list(obj["hyper"], "hyper"))
        program = cls(
            nodes=nodes,
            state=tuple(state),
            outputs=tuple(strict_int(o, "output", 0, len(nodes) - 1, GraphError) for o in _list(obj["outputs"], "outputs")),
            loss=strict_int(obj["loss"], "loss", 0, len(nodes) - 1, GraphError),
            constants=constants,
            hyper_names=hyper,
            sources=sources,
            meta=obj["meta"] if isinstance(obj["meta"], dict) else {},
            sends=tuple(strict_int(o, "send", 0, len(nodes) - 1, GraphError) for o in _list(obj.get("sends", []), "sends")),
            mail=Mail.from_json(obj["mail"]) if "mail" in obj else None,
        )
        validate(program)
        return program


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise GraphError(f"{what} must be a list")
    return value


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_RANK:
        raise GraphError(f"{what} must be a list of at most {MAX_RANK} sizes")
    shape = tuple(strict_int(s, what, 1, MAX_NUMEL, GraphError) for s in value)
    if int(np.prod(shape, dtype=object)) > MAX_NUMEL:
        raise GraphError(f"{what} {list(shape)} has too many elements")
    return shape


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise GraphError(f"constant is not base64: {exc}") from exc


def _parse_node(index: int, raw: Any) -> Node:
    if not isinstance(raw, list) or len(raw) != 5:
        raise GraphError(f"node {index}: expected [op, dtype, inputs, shape, attrs]")
    op, dtype, inputs, shape, attrs = raw
    if op not in OPS:
        raise GraphError(f"node {index}: unknown op {op!r}")
    if dtype not in DTYPES:
        raise GraphError(f"node {index}: unknown dtype {dtype!r}")
    if not isinstance(inputs, list) or len(inputs) > MAX_INPUTS:
        raise GraphError(f"node {index}: at most {MAX_INPUTS} inputs")
    if not isinstance(attrs, list) or len(attrs) > MAX_ATTRS:
        raise GraphError(f"node {index}: at most {MAX_ATTRS} attrs")
    return Node(
        index, op, dtype,
        tuple(strict_int(i, f"node {index} input", 0, index - 1 if index else -1, GraphError) for i in inputs),
        _shape(shape, f"node {index} shape"),
        tuple(strict_int(a, f"node {index} attr", 0, (1 << 256) - 1, GraphError) for a in attrs),
    )


def _le_bytes(tensor: torch.Tensor) -> bytes:
    array = tensor.detach().cpu().contiguous().numpy()
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def _from_le_bytes(data: bytes, node: Node) -> torch.Tensor:
    dtype = DTYPES[node.dtype]
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(data) != node.numel * itemsize:
        raise GraphError(f"constant of node {node.id} has {len(data)} bytes, expected {node.numel * itemsize}")
    np_dtype = {torch.float32: "<f4", torch.int64: "<i8", torch.bool: "?"}[dtype]
    tensor = torch.from_numpy(np.frombuffer(data, dtype=np_dtype).copy()).reshape(node.shape)
    if dtype == torch.float32 and not bool(torch.isfinite(tensor).all()) and not _only_neg_inf(tensor):
        raise GraphError(f"constant of node {node.id} holds NaN or +Inf")
    return tensor


def _only_neg_inf(tensor: torch.Tensor) -> bool:
    """Masks may hold -inf (an additive attention mask); NaN and +inf are never constants."""
    return not bool(torch.isnan(tensor).any()) and not bool(torch.isposinf(tensor).any())


def step_key(seed: int, step: int) -> int:
    """``uint32(keccak256(abi.encode(uint256 seed, uint256 step, uint256 DROPOUT_DOMAIN)))``."""
    from .commit import uint256

    return int.from_bytes(keccak256(uint256(seed) + uint256(step) + uint256(DROPOUT_DOMAIN)), "big") & 0xFFFFFFFF


def constant_root(tensor: torch.Tensor) -> int:
    return int.from_bytes(tensor_root(tensor if tensor.dtype != torch.bool else tensor.to(torch.int64)), "big")


def validate(program: Program) -> None:
    """Structural checks of an untrusted program; shapes are re-derived op by op (ops.py)."""
    nodes = program.nodes
    for node in nodes:
        if len(node.inputs) > MAX_INPUTS:  # what a program file may hold (from_dict)
            raise GraphError(f"{program.describe(node.id)}: at most {MAX_INPUTS} inputs")
        spec = OPS[node.op]
        try:
            spec.check(node, [nodes[i] for i in node.inputs])
        except GraphError as exc:
            raise GraphError(f"{program.describe(node.id)}: {exc}") from None
        if node.op == "const":
            if node.id not in program.constants:
                raise GraphError(f"node {node.id}: const without data")
            if constant_root(program.constants[node.id]) != node.attrs[0]:
                raise GraphError(f"node {node.id}: const data does not match its committed root")
    states = [node for node in nodes if node.op == "state"]
    if [n.attrs[0] for n in states] != list(range(len(program.state))):
        raise GraphError("state leaves must be numbered 0..n-1 in order")
    for slot, node in zip(program.state, states):
        if slot.shape != node.shape or node.dtype != "f32":
            raise GraphError(f"state {slot.name!r} does not match its leaf")
    if len(program.outputs) != len(program.state):
        raise GraphError("a step must output the whole next state")
    for slot, out in zip(program.state, program.outputs):
        if nodes[out].shape != slot.shape or nodes[out].dtype != "f32":
            raise GraphError(f"output for {slot.name!r} has shape {nodes[out].shape}, expected {slot.shape}")
    if nodes[program.loss].shape != () or nodes[program.loss].dtype != "f32":
        raise GraphError("the loss must be a float32 scalar")
    hyper = program.leaf("hyper")
    if hyper is not None and nodes[hyper].shape != (len(program.hyper_names),):
        raise GraphError("hyper leaf shape does not match the hyper names")
    singles = [n.op for n in nodes if n.op in ("data_x", "data_y", "hyper", "rng")]
    if len(set(singles)) != len(singles):
        raise GraphError("data_x, data_y, hyper and rng appear at most once")
    rng = program.leaf("rng")
    if rng is not None and (nodes[rng].shape != () or nodes[rng].dtype != "i64"):
        raise GraphError("the rng leaf is an int64 scalar")
    if [n.attrs[0] for n in nodes if n.op == "recv"] != list(range(program.receives)):
        raise GraphError("recv leaves must be numbered 0..n-1 in order")
    if any(nodes[i].dtype != "f32" or nodes[i].op in LEAVES for i in program.sends):
        raise GraphError("a sent message is a computed float32 node")
    if max(program.receives, len(program.sends)) > MAX_MAIL:
        raise GraphError(f"a step receives and sends at most {MAX_MAIL} messages each")
    mail = program.mail
    if mail is not None and (len(mail.inbox) != program.receives or any(
            p >= mail.per_step for p in (*mail.inbox, mail.offset + len(program.sends) - 1))):
        raise GraphError("the mail must place every message the step receives and sends within a step's messages")


# --------------------------------------------------------------------------------------------
# Execution


def tune_allocator() -> bool:
    """Keep freed tensor memory in glibc's heap instead of unmapping it (every step would page-fault
    its activations in again): the program allocates each node's output afresh, so on Linux this
    takes a step from ~1.2x to ~1.0x a plain in-place loop (``bench/program_speed.py``). Returns
    whether it applied (glibc only); the resident set stays at its peak, as a long-lived worker's would."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, (1 << 31) - 1))


@dataclass(frozen=True)
class Corruption:
    """A cheat's one wrong element (``cheats.corrupt_element``): ``delta`` added to element
    ``index`` (flat) of node ``node``'s output at step ``step``, then read by every later node."""

    step: int
    node: int
    index: int
    delta: float = 1.0


@dataclass
class StepResult:
    state: list[torch.Tensor]
    loss: torch.Tensor
    trace: list[torch.Tensor] | None = None
    sent: list[torch.Tensor] = field(default_factory=list)  # a participant's sent messages


Kernel = Callable[[list], Any]


def donors(nodes: Sequence[Node], plan: Sequence[tuple[tuple[int, ...], Any, tuple[int, ...]]],
           keep: set[int], consumable: Collection[int] = ()) -> dict[int, tuple[Callable, int]]:
    """Plan position -> (out= kernel, input id) where a node may write into that input: a float32
    node computed in this step (no leaf: the caller's state, the batch or a constant, except the
    ``consumable`` leaves), of the node's shape, read last by this node together with every value
    sharing its memory, none of them kept, and not read by the node through another alias."""
    storage = {}  # node id -> the node whose memory it may share
    for node in nodes:
        storage[node.id] = storage[node.inputs[0]] if node.op in ALIASING else node.id
    last_read: dict[int, int] = {}
    for position, (_slots, _fn, inputs) in enumerate(plan):
        for i in inputs:
            last_read[storage[i]] = position
    pinned = {storage[i] for i in keep} | {node.id for node in nodes if node.op in LEAVES and node.id not in consumable}
    out: dict[int, tuple[Callable, int]] = {}
    for position, (slots, _fn, inputs) in enumerate(plan):
        node = nodes[slots[0]]
        if node.op not in OUT_KERNELS or node.dtype != "f32":
            continue
        for i in sorted(inputs, key=lambda i: i not in consumable):  # the old state first: it is live all step
            root = storage[i]
            shared = {j for j in inputs if storage[j] == root}
            if (nodes[i].shape == node.shape and nodes[i].dtype == "f32" and root not in pinned
                    and last_read[root] == position and shared == {i}):
                out[position] = (OUT_KERNELS[node.op], i)
                break
    return out


def dense_for_views(nodes: Sequence[Node], plan: Sequence[tuple[tuple[int, ...], Any, tuple[int, ...]]]
                    ) -> dict[int, tuple[Callable, tuple[int, ...]]]:
    """Plan position -> (out= kernel, shape) of a float32 exactly rounded elementwise node read only by
    views. Its kernel would give a strided input's layout (an attention head split off a
    projection), which the views would then copy to read it contiguously; written into a fresh
    contiguous tensor instead, the same bits need no copy."""
    readers: dict[int, set[str]] = {}
    for node in nodes:
        for i in node.inputs:
            readers.setdefault(i, set()).add(node.op)
    return {position: (OUT_KERNELS[nodes[slots[0]].op], nodes[slots[0]].shape)
            for position, (slots, _fn, _inputs) in enumerate(plan)
            if nodes[slots[0]].op in OUT_KERNELS and nodes[slots[0]].dtype == "f32"
            and readers.get(slots[0]) == {"view"}}


class ProgramExecutor:
    """Runs a program with one PyTorch kernel per node (several nodes share one call where one
    ATen kernel produces them all), freeing every value after its last use unless a trace is kept.

    ``precision="float64"`` runs every kernel in float64 and rounds each float output to float32:
    a different-but-honest execution, used to profile a verifier's distance threshold.

    When values are freed (no trace kept or streamed), an exactly rounded elementwise node whose
    inputs are all contiguous writes its result into a computed input of its shape that nothing
    later reads, itself or through a view (:func:`donors`): the same bits in the same layout,
    without allocating and faulting in a fresh tensor.
    """

    def __init__(self, program: Program, precision: str = "float32") -> None:
        if precision not in ("float32", "float64"):
            raise GraphError(f"unknown precision {precision!r}")
        self.wide = precision == "float64"
        self.program = program
        self._plan = build_plan(program.nodes)
        self._size = len(program.nodes)
        self._leaves = {op: program.leaf(op) for op in ("data_x", "data_y", "hyper", "rng")}
        self._states = [node.id for node in program.nodes if node.op == "state"]
        self._recvs = [node.id for node in program.nodes if node.op == "recv"]
        self._constants: dict[torch.device, dict[int, torch.Tensor]] = {}
        keep = set(program.outputs) | {program.loss} | set(program.sends)
        last_use: dict[int, int] = {}
        first_use: dict[int, int] = {}
        for position, (slots, _fn, inputs) in enumerate(self._plan):
            for i in inputs:
                last_use[i] = position
                first_use.setdefault(i, position)
        self._position = {slot: at for at, (slots, _, _) in enumerate(self._plan) for slot in slots}
        # a participant's step takes each message when first needed and hands each on once computed
        self._recv_before: dict[int, list[tuple[int, int]]] = {}
        for index, node_id in enumerate(self._recvs):
            self._recv_before.setdefault(first_use.get(node_id, 0), []).append((index, node_id))
        self._sent_after: dict[int, list[tuple[int, int]]] = {}
        for index, node_id in enumerate(program.sends):
            self._sent_after.setdefault(self._position[node_id], []).append((index, node_id))
        self._free: list[tuple[int, ...]] = [() for _ in self._plan]
        for node_id, position in last_use.items():
            if node_id not in keep:
                self._free[position] += (node_id,)
        self._donors = donors(program.nodes, self._plan, keep)
        self._donors_consuming = donors(program.nodes, self._plan, keep, set(self._states))
        self._dense = {} if self.wide else dense_for_views(program.nodes, self._plan)

    def run(
        self,
        state: Sequence[torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        hyper: torch.Tensor | None = None,
        keep_trace: bool = False,
        rng: int | None = None,
        corrupt: Corruption | None = None,
        on_node: Callable[[int, torch.Tensor], None] | None = None,
        consume: bool = False,
        messages: Sequence[torch.Tensor] | Callable[[int], torch.Tensor] | None = None,
        on_send: Callable[[int, torch.Tensor], None] | None = None,
    ) -> StepResult:
        """One step; ``rng`` is the step's key (:func:`step_key`) when the program draws masks;
        ``corrupt`` (a cheat, never an honest run) perturbs one element of one node this step.
        ``on_node(node, output)`` is given every node's output (leaves first, then as computed,
        contiguous, in float32) while values are freed after their last use: the trace streamed
        instead of kept. ``consume``: nothing reads ``state`` after this call, so where its tensors
        share no memory the step may write its results into them (the old state is overwritten).

        A group participant's step (``recv`` leaves, ``sends``) takes ``messages``: the received
        tensors in order, or ``messages(i)`` called when message ``i`` is first needed (it may
        wait for a peer), and gives ``on_send(i, tensor)`` each message it sends as soon as it
        is computed, so that a pipeline of such steps can run as a training schedule."""
        if self._leaves["rng"] is not None:
            if rng is None:
                raise GraphError("this program draws dropout masks: give the step's key (step_key)")
            if not isinstance(rng, torch.Tensor):
                rng = torch.tensor(rng, dtype=torch.int64, device=x.device)
        values: list = [None] * self._size
        widen = _widen if self.wide else _same
        for node_id, tensor in zip(self._states, state):
            values[node_id] = widen(tensor)
        for op, tensor in (("data_x", x), ("data_y", y), ("hyper", hyper), ("rng", rng)):
            if self._leaves[op] is not None:
                values[self._leaves[op]] = widen(tensor.to(x.device))
        for node_id, tensor in self._constants_on(x.device).items():
            values[node_id] = widen(tensor)
        if len(self._recvs) and messages is None:
            raise GraphError(f"this step receives {len(self._recvs)} message(s): give them")
        take = messages if callable(messages) else None
        if take is None and messages is not None:
            if len(messages) != len(self._recvs):
                raise GraphError(f"this step receives {len(self._recvs)} message(s), got {len(messages)}")
            for node_id, tensor in zip(self._recvs, messages):
                values[node_id] = widen(self._message(node_id, tensor, x.device))
        free = None if keep_trace else self._free
        narrow = _narrow if self.wide else _same
        if on_node is not None:
            for node_id, value in enumerate(values):
                if value is not None:
                    on_node(node_id, narrow(value).contiguous())
        corrupt_at = -1 if corrupt is None else self._position[corrupt.node]
        donors = {}
        if free is not None and on_node is None and not self.wide:
            distinct = len({t.untyped_storage().data_ptr() for t in state}) == len(state)
            donors = self._donors_consuming if consume and distinct else self._donors
        for position, (slots, fn, inputs) in enumerate(self._plan):
            if take is not None:
                for index, node_id in self._recv_before.get(position, ()):
                    values[node_id] = widen(self._message(node_id, take(index), x.device))
                    if on_node is not None:
                        on_node(node_id, narrow(values[node_id]).contiguous())
            donor = donors.get(position)
            if donor is not None and all(values[i].is_contiguous() for i in inputs):
                out = donor[0](*(values[i] for i in inputs), out=values[donor[1]])
            elif (dense := self._dense.get(position)) and not all(values[i].is_contiguous() for i in inputs):
                out = dense[0](*(values[i] for i in inputs), out=torch.empty(dense[1], device=x.device))
            else:
                out = fn(values)
            if self.wide:
                out = tuple(map(_round, out)) if isinstance(out, tuple) else _round(out)
            if len(slots) == 1:
                values[slots[0]] = out
            else:
                for slot, tensor in zip(slots, out):
                    values[slot] = tensor
            if position == corrupt_at:
                wrong = values[corrupt.node].clone()  # a view node's output shares its input's memory
                wrong.view(-1)[corrupt.index] += corrupt.delta
                values[corrupt.node] = wrong
            if on_node is not None:
                for slot in slots:
                    on_node(slot, narrow(values[slot]).contiguous())
            if on_send is not None:
                for index, node_id in self._sent_after.get(position, ()):
                    on_send(index, narrow(values[node_id]))
            if free is not None:
                for node_id in free[position]:
                    values[node_id] = None
        new_state = [narrow(values[i]) for i in self.program.outputs]
        trace = [narrow(v).contiguous() if isinstance(v, torch.Tensor) else v for v in values] if keep_trace else None
        sent = [narrow(values[i]) for i in self.program.sends]
        return StepResult(new_state, narrow(values[self.program.loss]), trace, sent)

    def _message(self, node_id: int, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        node = self.program.nodes[node_id]
        if tuple(tensor.shape) != node.shape or tensor.dtype != torch.float32:
            raise GraphError(f"message {node.attrs[0]} is {tensor.dtype}{list(tensor.shape)}, "
                             f"the step reads float32{list(node.shape)}")
        return tensor.to(device)

    def _constants_on(self, device: torch.device) -> dict[int, torch.Tensor]:
        """The program's constants on the device the step runs on (copied once per device)."""
        if device not in self._constants:
            self._constants[device] = {i: t.to(device) for i, t in self.program.constants.items()}
        return self._constants[device]


def _same(tensor):
    return tensor


def _widen(tensor):
    return tensor.double() if tensor is not None and tensor.dtype == torch.float32 else tensor


def _narrow(tensor):
    return tensor.float() if tensor is not None and tensor.dtype == torch.float64 else tensor


def _round(tensor):
    """float64 -> nearest float32 -> float64 (one honest rounding per node); a float32 output (a
    cast from an integer or bool) is widened exactly."""
    if tensor is not None and tensor.dtype == torch.float64:
        return tensor.float().double()
    return _widen(tensor)


class CapturedStep:
    """A program's step captured once as a CUDA graph and replayed per step: one launch instead of
    one per node, the same kernels on the same addresses, so bitwise the step
    :class:`ProgramExecutor` runs. Inputs are copied into static buffers; the state stays on the
    device between steps."""

    def __init__(self, executor: ProgramExecutor, state: Sequence[torch.Tensor], x: torch.Tensor,
                 y: torch.Tensor, hyper: torch.Tensor | None = None, rng: int | None = None) -> None:
        if executor.wide:
            raise GraphError("a float64 execution is not captured")
        self.state = [t.clone() for t in state]
        self.x, self.y = x.clone(), y.clone()
        self.hyper = hyper.to(x.device).clone() if hyper is not None else None
        self.rng = torch.tensor(rng or 0, dtype=torch.int64, device=x.device)
        run = functools.partial(executor.run, keep_trace=False)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: kernels pick their algorithms, constants move
            run(self.state, self.x, self.y, self.hyper, rng=self.rng)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = run(self.state, self.x, self.y, self.hyper, rng=self.rng)

    def run(self, x: torch.Tensor, y: torch.Tensor, hyper: torch.Tensor | None = None,
            rng: int | None = None) -> torch.Tensor:
        """One step from the current state; returns the loss (the state advances in place)."""
        self.x.copy_(x)
        self.y.copy_(y)
        if hyper is not None:
            self.hyper.copy_(hyper)
        if rng is not None:
            self.rng.fill_(rng)
        self.graph.replay()
        torch._foreach_copy_(self.state, self.out.state)
        return self.out.loss

