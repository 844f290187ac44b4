"""Export a PyTorch model's whole training step as a verifiable :class:`~offchain.ml.program.Program`.

``export_program(model, ...)`` builds the step function ``(state, x, y, hyper) -> (next state,
loss)`` out of ``torch.func.functional_call`` (forward), the chosen loss, ``torch.func.grad``
(autograd's backward) and the optimizer of ``optim.py``, traces it with ``make_fx`` (functionalized,
so in-place ops become pure ones) **without PyTorch's decompositions** — the graph holds the ATen
kernels eager PyTorch runs, so the program trains as fast as a plain loop — and lowers every ATen
call onto the op set of ``ops.py``. The exceptions are the rewrites of ``rewrites.py``: a fused
kernel whose reduction is longer than one judge call reads is written as sums the dispute game
dissects, a kernel the op set has no node for with ops it has, and a few calls before autograd
sees them (docs/programs.md §2).

* view ops (view, permute, transpose, expand, slice, split, unsqueeze, ...) are composed on meta
  tensors and become one ``view`` node (an affine index map) where a kernel consumes them;
* Python scalars and value-independent tensors (``ones_like``, masks, positions) become ``const``
  leaves; ops whose inputs are all constants are folded at export;
* anything else must be in the op set, or the export fails naming the ATen op and the model line.

Why ``make_fx`` over ``torch.export``: it traces ``torch.func.grad`` through to the backward
kernels in one graph with the real autograd formulas on torch 2.13, while ``torch.export``
captures the forward only (its joint-graph API is still private).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch.fx.experimental.proxy_tensor import make_fx
from torch.nn.attention import SDPBackend, sdpa_kernel

from .errors import GraphError
from .ops import DTYPE_NAMES, DTYPES, LEAVES, SIGNED, Node, f32_bits
from .optim import OptimizerConfig
from .program import MAX_INPUTS, Program, StateSlot, constant_root, validate
from .rewrites import (DECOMPOSED, POSITION_SUMS, WIDE_COLUMNS, BeforeAutograd, Stats, batch_norm_steps, composite_rnns,
                       pair)

aten = torch.ops.aten
#: regression losses: the model's outputs against the last ``targets`` columns of each data row
REGRESSION_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}
LOSSES = ("cross_entropy", "lm_cross_entropy", *REGRESSION_LOSSES)
_TORCH_DIR = os.path.dirname(torch.__file__)
_CAPTURE_FILES = tuple(os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
                       for name in ("capture.py", "optim.py", "rewrites.py"))


@dataclass(frozen=True)
class ExportConfig:
    """What the step trains on: ``data_x`` rows of ``data_dim`` floats reshaped to ``input_shape``
    (classification), rows of ``seq_len + 1`` token ids (language modelling), or the input's floats
    followed by ``targets`` target values (regression: ``REGRESSION_LOSSES``)."""

    batch_size: int
    input_shape: tuple[int, ...]
    loss: str = "cross_entropy"
    optimizer: OptimizerConfig = OptimizerConfig()
    targets: int = 1  # regression: the values a row's target holds
    label_smoothing: float = 0.0  # cross-entropy losses: the share of each target spread over every class

    @property
    def data_dim(self) -> int:
        if self.loss == "lm_cross_entropy":
            (seq_len,) = self.input_shape
            return seq_len + 1
        return math.prod(self.input_shape) + (self.targets if self.loss in REGRESSION_LOSSES else 0)


def export_program(model: torch.nn.Module, config: ExportConfig, meta: dict[str, Any] | None = None, *,
                   long_sums: bool = True) -> Program:
    """Capture ``model``'s training step under ``config`` (see the module docstring);
    ``long_sums=False`` keeps every fused kernel (a program the game may not judge: what the
    rewrites cost is measured against it)."""
    if config.loss not in LOSSES:
        raise GraphError(f"unknown loss {config.loss!r}; allowed: {LOSSES}")
    if config.loss in REGRESSION_LOSSES and config.targets < 1:
        raise GraphError(f"a regression loss needs at least one target value a row, got {config.targets}")
    if not 0 <= config.label_smoothing < 1 or (config.label_smoothing and config.loss in REGRESSION_LOSSES):
        raise GraphError(f"label smoothing {config.label_smoothing}: a cross-entropy loss takes a share in [0, 1)")
    model, stats = batch_norm_steps(model)
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]
    frozen = _frozen(model)
    trained = [(name, p.detach()) for name, p in model.named_parameters() if name not in frozen]
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    optimizer = config.optimizer
    buffer_kinds = optimizer.buffers()
    step = _step_function(model, names, buffers, config, stats)
    state = params + [torch.zeros_like(p) for _, p in trained for _ in buffer_kinds] + [buffers[name] for name in stats]
    x = torch.zeros(config.batch_size, config.data_dim)
    y = torch.zeros(config.batch_size, dtype=torch.int64)
    hyper = torch.tensor(optimizer.hyper_row(0, 1), dtype=torch.float32)
    model.train()
    slots = [StateSlot(name, tuple(p.shape), "param") for name, p in zip(names, params)]
    slots += [StateSlot(f"{name}.{kind}", tuple(p.shape), "buffer") for name, p in trained for kind in buffer_kinds]
    slots += [StateSlot(name, tuple(buffers[name].shape), "stat") for name in stats]
    with composite_rnns(model):
        program = capture_step(step, [*state, x, y, hyper], slots, optimizer.hyper_names, long_sums=long_sums)
    program.meta.update(meta or {})
    program.meta.update({
        "loss": config.loss, "input_shape": list(config.input_shape), "optimizer": optimizer.to_dict(),
        **({"targets": config.targets} if config.loss in REGRESSION_LOSSES else {}),
        **({"label_smoothing": config.label_smoothing} if config.label_smoothing else {}),
    })
    return program


def initial_tensors(model: torch.nn.Module, program: Program) -> dict[str, torch.Tensor]:
    """What checkpoint 0 of ``program`` takes from ``model``: its parameters and running statistics."""
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    return {slot.name: tensors[slot.name].detach().clone() for slot in program.state if slot.kind != "buffer"}


#: torch's tracing keeps global state: one capture at a time in a process (workers run on its threads)
_TRACING = threading.Lock()


def capture_step(step: Callable, args: Sequence[torch.Tensor], slots: list[StateSlot], hyper_names: Sequence[str], *,
                 receives: int = 0, long_sums: bool = True) -> Program:
    """Trace ``step(*state, x, y, hyper, *received) -> (*next state, loss, *sent)`` on ``args``
    and lower it to a validated program (``receives`` messages read, the rest of the outputs sent)."""
    try:
        with _TRACING, sdpa_kernel([SDPBackend.MATH]), BeforeAutograd():
            table = {**DECOMPOSED, **(POSITION_SUMS if long_sums else {})}
            graph = make_fx(torch.func.functionalize(step, remove="mutations"), record_stack_traces=True,
                            decomposition_table=table)(*args)
        graph.graph.eliminate_dead_code()
    except GraphError:
        raise
    except Exception as exc:  # tracing runs user code: report its error in one line
        raise GraphError(f"tracing the training step failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    program = _Lowering(graph, slots, hyper_names, receives).run()
    validate(program)
    return program


def _step_function(model, names, buffers, config: ExportConfig, stats: Stats | None = None) -> Callable:
    """``step(*params, *optimizer buffers, *running statistics, x, y, hyper) -> (the same state
    next, loss)``; ``stats`` (:func:`batch_norm_steps`) names the running statistics. Parameters
    that do not require a gradient (frozen) pass through unchanged and keep no optimizer buffers,
    as a plain loop's optimizer skips a parameter without a gradient."""
    optimizer = config.optimizer
    stats = stats or {}
    frozen = _frozen(model)
    trained = [name for name in names if name not in frozen]
    n_params = len(names)
    n_buffers = len(optimizer.buffers())
    n_state = n_params + len(trained) * n_buffers

    def loss_of(params: dict, fixed: dict, running: dict, x: torch.Tensor, y: torch.Tensor):
        values = {**buffers, **running, **fixed, **params}

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            return _model_output(torch.func.functional_call(model, values, (inputs,)))
        if config.loss == "lm_cross_entropy":
            tokens = x.to(torch.int64)
            logits = forward(tokens[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                   label_smoothing=config.label_smoothing)
        elif config.loss in REGRESSION_LOSSES:
            inputs, target = x[:, :-config.targets].reshape(x.shape[0], *config.input_shape), x[:, -config.targets:]
            out = forward(inputs)
            if out.numel() != target.numel():
                raise GraphError(f"the model gives {out.numel() // x.shape[0]} values a row; the {config.loss} loss "
                                 f"compares {config.targets} targets (--targets)")
            loss = REGRESSION_LOSSES[config.loss](out.reshape(target.shape), target)
        else:
            inputs = x.reshape(x.shape[0], *config.input_shape)
            loss = F.cross_entropy(forward(inputs), y, label_smoothing=config.label_smoothing)
        return loss, {name: norm.updates[which] for name, (norm, which) in stats.items()}

    def step(*args):
        params = dict(zip(names, args[:n_params]))
        states = args[n_params:n_state]
        running = dict(zip(stats, args[n_state:n_state + len(stats)]))
        x, y, hyper = args[-3:]
        fixed = {name: params.pop(name) for name in frozen}
        grads, (loss, updated) = torch.func.grad_and_value(loss_of, has_aux=True)(params, fixed, running, x, y)
        per_param = [list(states[i * n_buffers:(i + 1) * n_buffers]) for i in range(len(trained))]
        new_trained, new_buffers = optimizer.update([params[n] for n in trained], [grads[n] for n in trained],
                                                    per_param, hyper)
        new_params = {**fixed, **dict(zip(trained, new_trained))}
        return (*[new_params[n] for n in names], *[b for group in new_buffers for b in group],
                *[updated[n] for n in stats], loss.detach())

    return step


def _frozen(model: torch.nn.Module) -> set[str]:
    """Parameters that do not require a gradient: not updated, no optimizer buffers."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def _model_output(out: Any) -> torch.Tensor:
    """What the loss reads of a model's output: the tensor, a tuple's or list's first item (as
    recurrent layers return), or a mapping's ``"logits"`` (as Hugging Face models return)."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    elif isinstance(out, Mapping) and "logits" in out:
        out = out["logits"]
    if not isinstance(out, torch.Tensor):
        raise GraphError(f"the model returned {type(out).__name__}: return the outputs the loss reads as a tensor, "
                         "a tuple whose first item it is, or a mapping with 'logits'")
    return out


# --------------------------------------------------------------------------------------------
# Lowering


@dataclass
class _Value:
    """A traced tensor: a node (``meta`` contiguous), a view of one (``meta`` a strided view of
    the node's storage), or a constant (``const`` holds it)."""

    node: int | None
    meta: torch.Tensor
    const: torch.Tensor | None = None


VIEW_OPS = {
    aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.permute.default, aten.t.default,
    aten.transpose.int, aten.expand.default, aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.dims,
    aten.squeeze.default, aten.slice.Tensor, aten.select.int, aten.split.Tensor, aten.split_with_sizes.default,
    aten.unbind.int, aten.alias.default, aten.chunk.default, aten.narrow.default, aten.flatten.using_ints,
    aten.unsafe_split.Tensor, aten.unsafe_chunk.default, aten.unsafe_split_with_sizes.default,
    aten.diagonal.default, aten.unfold.default,
}
IDENTITY_OPS = {aten.clone.default, aten.detach.default, aten.lift_fresh_copy.default, aten.contiguous.default}
CREATION_OPS = {
    aten.ones_like.default, aten.zeros_like.default, aten.full_like.default, aten.empty_like.default,
    aten.ones.default, aten.zeros.default, aten.full.default, aten.arange.default, aten.arange.start,
    aten.arange.start_step, aten.scalar_tensor.default, aten.empty.memory_format, aten.new_zeros.default,
    aten.new_ones.default, aten.new_full.default, aten.new_empty.default, aten.eye.default, aten.eye.m,
    aten.linspace.default, aten.logspace.default,
}
#: elementwise ops the judge has no integer rule for (comparisons, maximum/minimum, where and the
#: logical ops have one): refused on int64 and bool operands unless folded into a constant
INTEGER_ARITHMETIC = {"add", "sub", "mul", "div", "neg", "abs", "relu", "reciprocal"}
RANDOM_OPS = {aten.native_dropout.default, aten.bernoulli_.float, aten.rand_like.default,
              aten.randn_like.default, aten.rand.default, aten.randn.default, aten.randint.low,
              aten.randperm.default, aten.normal.Tensor_float}
UNARY = {
    aten.neg.default: "neg", aten.abs.default: "abs", aten.exp.default: "exp", aten.log.default: "log",
    aten.sqrt.default: "sqrt", aten.rsqrt.default: "rsqrt", aten.reciprocal.default: "reciprocal",
    aten.tanh.default: "tanh", aten.erf.default: "erf", aten.sigmoid.default: "sigmoid", aten.relu.default: "relu",
    aten.silu.default: "silu", aten.logical_not.default: "logical_not",
}
BINARY = {
    aten.add.Tensor: "add", aten.add.Scalar: "add", aten.sub.Tensor: "sub", aten.sub.Scalar: "sub",
    aten.mul.Tensor: "mul", aten.mul.Scalar: "mul", aten.div.Tensor: "div", aten.div.Scalar: "div",
    aten.maximum.default: "maximum", aten.minimum.default: "minimum", aten.clamp_min.default: "maximum",
    aten.clamp_max.default: "minimum", aten.gelu_backward.default: "gelu_backward",
    aten.tanh_backward.default: "tanh_backward", aten.sigmoid_backward.default: "sigmoid_backward",
    aten.silu_backward.default: "silu_backward", aten.logical_and.default: "logical_and",
    aten.logical_or.default: "logical_or",
    **{getattr(aten, cmp).Tensor: cmp for cmp in ("eq", "ne", "lt", "le", "gt", "ge")},
    **{getattr(aten, cmp).Scalar: cmp for cmp in ("eq", "ne", "lt", "le", "gt", "ge")},
}
SOFTMAX = {
    aten._softmax.default: "softmax", aten._safe_softmax.default: "safe_softmax",
    aten._log_softmax.default: "log_softmax",
}


class _Lowering:
    """Lowers a traced step ``(*state, x, y, hyper, *received) -> (*next state, loss, *sent)``:
    ``receives`` trailing inputs become ``recv`` leaves, the outputs after the loss ``sends``."""

    def __init__(self, graph: torch.fx.GraphModule, slots: list[StateSlot], hyper_names: Sequence[str],
                 receives: int = 0) -> None:
        self.graph = graph
        self.slots = slots
        self.receives = receives
        self.hyper_names = tuple(hyper_names)
        self.nodes: list[Node] = []
        self.sources: list[str] = []
        self.constants: dict[int, torch.Tensor] = {}
        self.values: dict[torch.fx.Node, Any] = {}
        self.materialised: dict[tuple, int] = {}
        self.source = "?"
        self.rng: int | None = None
        self.random_sites = 0

    # ---------------------------------------------------------------------------- emission

    def emit(self, op: str, inputs: Sequence[int], like: torch.Tensor, attrs: Sequence[int] = ()) -> int:
        if like.dtype not in DTYPE_NAMES:
            raise GraphError(f"dtype {like.dtype} is not supported (float32, int64 and bool are), at {self.source}")
        node = Node(len(self.nodes), op, DTYPE_NAMES[like.dtype], tuple(inputs), tuple(like.shape), tuple(attrs))
        self.nodes.append(node)
        self.sources.append(self.source)
        return node.id

    def fresh(self, op: str, inputs: Sequence[int], like: torch.Tensor, attrs: Sequence[int] = ()) -> _Value:
        node = self.emit(op, inputs, like, attrs)
        return _Value(node, torch.empty(like.shape, dtype=like.dtype, device="meta"))

    def constant(self, tensor: torch.Tensor) -> _Value:
        return _Value(None, torch.empty(tensor.shape, dtype=tensor.dtype, device="meta"), tensor)

    def node_of(self, value: Any, like_dtype: torch.dtype = torch.float32) -> int:
        """The node holding ``value`` (a view, a constant or a Python scalar gets one)."""
        if not isinstance(value, _Value):
            value = self.constant(_scalar_tensor(value, like_dtype))
        if value.const is not None:
            tensor = value.const.contiguous()
            key = ("const", tensor.dtype, tuple(tensor.shape), tensor.numpy().tobytes())
            if key not in self.materialised:
                node = self.emit("const", (), tensor, (constant_root(tensor),))
                self.constants[node] = tensor
                self.materialised[key] = node
            return self.materialised[key]
        meta, base = value.meta, self.nodes[value.node]
        if tuple(meta.shape) == base.shape and meta.is_contiguous() and meta.storage_offset() == 0:
            return value.node
        key = ("view", value.node, tuple(meta.shape), meta.stride(), meta.storage_offset())
        if key not in self.materialised:
            self.materialised[key] = self.emit("view", (value.node,), meta, (meta.storage_offset(), *meta.stride()))
        return self.materialised[key]

    # ---------------------------------------------------------------------------- walk

    def run(self) -> Program:
        placeholders = [n for n in self.graph.graph.nodes if n.op == "placeholder"]
        n_state = len(self.slots)
        if len(placeholders) != n_state + 3 + self.receives:
            raise GraphError("unexpected step signature")
        for index, fx in enumerate(placeholders):
            val = fx.meta["val"]
            self.source = "training state" if index < n_state else "batch" if index < n_state + 3 else "message"
            if index < n_state:
                self.values[fx] = self.fresh("state", (), val, (index,))
            elif index < n_state + 3:
                if self.receives and not fx.users:  # a participant's step names only the data it reads
                    continue
                self.values[fx] = self.fresh(("data_x", "data_y", "hyper")[index - n_state], (), val)
            else:
                self.values[fx] = self.fresh("recv", (), val, (index - n_state - 3,))
        outputs: list = []
        for fx in self.graph.graph.nodes:
            self.source = _source_line(fx)
            if fx.op == "get_attr":
                self.values[fx] = self.constant(getattr(self.graph, fx.target).detach())
            elif fx.op == "call_function":
                self.values[fx] = self.lower(fx)
            elif fx.op == "output":
                outputs = list(fx.args[0])
        results = [self.values[o] for o in outputs]
        self.source = "optimizer update"
        new_state = [self.node_of(v) for v in results[:n_state]]
        loss = self.node_of(results[n_state])
        self.source = "message sent"
        sends = tuple(self._computed(v) for v in results[n_state + 1:])
        return Program(
            nodes=tuple(self.nodes), state=tuple(self.slots), outputs=tuple(new_state), loss=loss,
            constants=self.constants, hyper_names=self.hyper_names, sources=tuple(self.sources), meta={},
            sends=sends,
        )

    def _computed(self, value: Any) -> int:
        """The node of a sent message: computed (a leaf, such as a message passed on unchanged,
        or a constant is copied by a ``view``, so that a message is always its sender's work)."""
        node = self.node_of(value)
        if self.nodes[node].op in LEAVES:
            meta = torch.empty(self.nodes[node].shape, dtype=DTYPES[self.nodes[node].dtype], device="meta")
            node = self.emit("view", (node,), meta, (0, *meta.stride()))
        return node

    def arg(self, a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            return self.values[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(x) for x in a)
        return a

    def lower(self, fx: torch.fx.Node) -> Any:
        target = fx.target
        args = [self.arg(a) for a in fx.args]
        kwargs = {k: self.arg(v) for k, v in fx.kwargs.items()}
        if target is _getitem:
            return args[0][args[1]]
        if target in RANDOM_OPS:
            raise GraphError(f"{target} draws random numbers a program cannot reproduce (only dropout "
                             f"masks are drawn, from the task seed), at {self.source}")
        if target is aten.bernoulli.p:  # dropout's keep mask (before constant folding: it is random)
            return self.bernoulli(fx, args[1])
        if target in CREATION_OPS:  # only the shape of a `*_like` input matters
            return self.constant(_run_real(target, _realise(args, shapes_only=True), _realise(kwargs)))
        values = [a for a in _flat(args) + _flat(list(kwargs.values())) if isinstance(a, _Value)]
        if values and all(v.const is not None for v in values):
            folded = _run_real(target, _realise(args), _realise(kwargs))
            return [self.constant(t) for t in folded] if isinstance(folded, (list, tuple)) else self.constant(folded)
        if target in IDENTITY_OPS:
            return args[0]
        if target is aten._to_copy.default:
            return self.cast(args[0], kwargs.get("dtype", args[0].meta.dtype), fx)
        if target in VIEW_OPS:
            return self.view(target, args, kwargs)
        handler = _HANDLERS.get(target)
        if handler is None:
            raise GraphError(f"op {target} is not in the verifiable op set (see docs/programs.md), at {self.source}")
        return handler(self, fx, args, kwargs)

    def view(self, target, args, kwargs) -> Any:
        source = args[0]
        if source.const is not None:
            return self.constant(target(source.const, *args[1:], **kwargs))
        try:
            result = target(source.meta, *args[1:], **kwargs)
        except RuntimeError:  # a reshape no strides can express: read the view out first
            base = self.node_of(source)
            source = _Value(base, torch.empty(self.nodes[base].shape, dtype=source.meta.dtype, device="meta"))
            result = target(source.meta, *args[1:], **kwargs)
        wrap = lambda m: _Value(source.node, m)  # noqa: E731
        if isinstance(result, (list, tuple)):
            return [wrap(m) for m in result]
        return wrap(result)

    def bernoulli(self, fx, keep: float) -> _Value:
        """A keep mask drawn from the step's key: P(1) = ``keep`` (``ops.bernoulli_element``)."""
        if self.rng is None:
            self.rng = self.emit("rng", (), torch.empty((), dtype=torch.int64))
        salt = (self.random_sites * 0x9E3779B9) & 0xFFFFFFFF
        self.random_sites += 1
        threshold = min(max(round(keep * 2**32), 0), 2**32)
        return self.fresh("bernoulli", (self.rng,), fx.meta["val"], (salt, threshold))

    def cast(self, value: _Value, dtype: torch.dtype, fx) -> _Value:
        if dtype == value.meta.dtype:
            return value
        return self.fresh("cast", (self.node_of(value),), fx.meta["val"])

    def op(self, name: str, fx, inputs: Sequence[Any], attrs: Sequence[int] = ()) -> _Value:
        dtype = _compute_dtype(inputs)
        if dtype == torch.int64 and name in INTEGER_ARITHMETIC:
            raise GraphError(f"{fx.target} on integers is not in the verifiable op set (integers are compared, "
                             f"clamped, selected, counted and looked up, not computed with), at {self.source}")
        return self.fresh(name, [self.node_of(i, dtype) for i in inputs], fx.meta["val"], attrs)

    def group(self, names: Sequence[str | None], fx, inputs: Sequence[Any], attrs: Sequence[int]) -> list:
        """Nodes for the outputs of one multi-output kernel, emitted consecutively."""
        ids = [self.node_of(i) for i in inputs if i is not None]
        vals = fx.meta["val"]
        out: list = []
        for name, val in zip(names, vals):
            out.append(self.fresh(name, ids, val, attrs) if name is not None else None)
        return out


_getitem = __import__("operator").getitem


def _flat(items: Sequence[Any]) -> list:
    out: list = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out += _flat(item)
        else:
            out.append(item)
    return out


def _realise(args: Any, shapes_only: bool = False) -> Any:
    """Real tensors for constant values (zeros of the right shape for others if ``shapes_only``)."""
    if isinstance(args, _Value):
        if args.const is None and shapes_only:
            return torch.zeros(args.meta.shape, dtype=args.meta.dtype)
        return args.const
    if isinstance(args, dict):
        return {k: _realise(v, shapes_only) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        return type(args)(_realise(a, shapes_only) for a in args)
    return args


def _run_real(target, args, kwargs) -> torch.Tensor:
    kwargs = {k: v for k, v in kwargs.items() if k not in ("device", "pin_memory")}
    return target(*args, **kwargs)


def _scalar_tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, bool):
        return torch.tensor(value)
    if isinstance(value, int) and dtype != torch.float32:
        return torch.tensor(value, dtype=torch.int64)
    if isinstance(value, (int, float)):
        return torch.tensor(value, dtype=torch.float32)
    raise GraphError(f"unsupported scalar argument {value!r}")


def _compute_dtype(inputs: Sequence[Any]) -> torch.dtype:
    dtypes = {i.meta.dtype for i in inputs if isinstance(i, _Value)}
    return torch.float32 if torch.float32 in dtypes or not dtypes else torch.int64


def _source_line(fx: torch.fx.Node) -> str:
    """The innermost model line (outside torch and the capture's own step and optimizer; a preset's
    line in ``models.py`` counts) that produced ``fx``; where a torch layer was called by torch
    alone (inside ``nn.Sequential``), the innermost line of ``torch.nn`` that did."""
    trace = fx.meta.get("stack_trace")
    if not trace:
        return "the backward pass"
    lines = trace.strip().splitlines()
    best = layer = None
    for i, line in enumerate(lines):
        line = line.strip()
        if line.startswith('File "') and ", line " in line:
            path = line.split('"')[1]
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            where = f"{line.split(', line ')[1].split(',')[0]}: {code}"
            if not path.startswith(_TORCH_DIR) and os.path.abspath(path) not in _CAPTURE_FILES:
                best = f"{os.path.basename(path)}:{where}"
            elif path.startswith(os.path.join(_TORCH_DIR, "nn", "")):
                layer = f"{os.path.relpath(path, os.path.dirname(_TORCH_DIR))}:{where}"
    return best or layer or "?"


# --------------------------------------------------------------------------------------------
# Handlers: ATen call -> op-set nodes


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _binary(low: _Lowering, fx, args, kwargs):
    name = BINARY[fx.target]
    alpha = kwargs.get("alpha", 1)
    a, b = args[0], args[1]
    if name in ("eq", "ne") and isinstance(b, float) and math.isinf(b):
        # a program holds no infinite constant: x == ±inf is x > max (x < −max), x != ±inf its negation
        mask = low.op("gt" if b > 0 else "lt", fx, [a, math.copysign(_FLOAT32_MAX, b)])
        return mask if name == "eq" else low.op("logical_not", fx, [mask])
    if alpha != 1:
        b = low.op("mul", fx, [b, alpha]) if isinstance(b, _Value) else b * alpha
    return low.op(name, fx, [a, b])


def _unary(low, fx, args, kwargs):
    return low.op(UNARY[fx.target], fx, [args[0]])


def _pow(low, fx, args, kwargs):
    """x^p: a chain of products for a whole p up to 16 (x·x, (x·x)·x, (x·x)·(x·x): what rsqrt's
    backward (y³) and norms need, and so on by squaring), its reciprocal for −16 ≤ p ≤ −2; sqrt,
    rsqrt, reciprocal for ½, −½, −1; 1 for 0; any other p as exp(p·log x) (NaN for x < 0, as
    eager's)."""
    base, exponent = args
    if not isinstance(exponent, (int, float)):
        raise GraphError(f"pow with a tensor exponent is not supported (a number is), at {low.source}")
    names = {0.5: "sqrt", -0.5: "rsqrt", -1: "reciprocal"}
    if exponent == 1:
        return base
    if exponent in names:
        return low.op(names[exponent], fx, [base])
    if exponent == 0:
        return low.constant(torch.ones(fx.meta["val"].shape))
    if float(exponent).is_integer() and 2 <= abs(exponent) <= 16:
        power, square, n = None, base, int(abs(exponent))
        while n:
            if n & 1:
                power = square if power is None else low.op("mul", fx, [power, square])
            n >>= 1
            square = low.op("mul", fx, [square, square]) if n else square
        return power if exponent > 0 else low.op("reciprocal", fx, [power])
    return low.op("exp", fx, [low.op("mul", fx, [low.op("log", fx, [base]), float(exponent)])])


def _bitwise_bool(low, fx, args, kwargs):
    """``&``, ``|``, ``~`` of masks: logical ops on bool tensors (integer bit operations are refused)."""
    if fx.meta["val"].dtype != torch.bool:
        raise GraphError(f"{fx.target} on integers is not in the verifiable op set (on bool masks it is), at {low.source}")
    name = {aten.bitwise_and.Tensor: "logical_and", aten.bitwise_or.Tensor: "logical_or",
            aten.bitwise_not.default: "logical_not"}[fx.target]
    return low.op(name, fx, args[:2 if name != "logical_not" else 1])


def _sign(low, fx, args, kwargs):
    """sign(x) = (x > 0) − (x < 0), exactly (abs's backward multiplies by it)."""
    x, zero, out = low.node_of(args[0]), low.node_of(0.0), fx.meta["val"]
    mask = torch.empty(out.shape, dtype=torch.bool, device="meta")
    pos, neg = (low.fresh("cast", [low.fresh(cmp, [x, zero], mask).node], out) for cmp in ("gt", "lt"))
    return low.op("sub", fx, [pos, neg])


def _emitter(low, out: torch.Tensor):
    """``node(op, *inputs, like=out)`` emitting one node of ``out``'s shape (inputs: values, node
    ids or Python scalars), and bool and int64 metas of that shape."""
    mask, ints = (torch.empty(out.shape, dtype=dtype, device="meta") for dtype in (torch.bool, torch.int64))

    def node(name: str, *inputs, like: torch.Tensor = out) -> int:
        return low.fresh(name, [low.node_of(i) if not isinstance(i, int) else i for i in inputs], like).node

    return node, mask, ints


def _truncation(node, mask, ints, x: int) -> tuple[int, int, int]:
    """(|x| < 2²³, x there and 0 elsewhere, trunc of that by two casts): larger floats, infinities
    and NaN are whole already."""
    small = node("lt", node("abs", x), float(1 << 23), like=mask)
    inside = node("where", small, x, 0.0)
    return small, inside, node("cast", node("cast", inside, like=ints))


def _round(low, fx, args, kwargs):
    """round(x), ties to even, from ops the judge checks exactly: where |x| < 2^23 (larger floats,
    infinities and NaN round to themselves), t = trunc(x) by two casts and f = x − t (exact), then
    t ± 1 where |f| > 1/2 or where |f| = 1/2 and t is odd; a zero result takes x's sign (x·0)."""
    if kwargs.get("decimals", 0) or len(args) > 1:
        raise GraphError(f"round to decimals is not supported (round to an integer is), at {low.source}")
    node, mask, ints = _emitter(low, fx.meta["val"])
    x = low.node_of(args[0])
    small, inside, t = _truncation(node, mask, ints, x)
    f = node("sub", inside, t)
    odd = node("ne", t, node("mul", node("cast", node("cast", node("mul", t, 0.5), like=ints)), 2.0), like=mask)
    ties = [node("logical_and", node("eq", f, sign * 0.5, like=mask), odd, like=mask) for sign in (1, -1)]
    up, down = (node("logical_or", node(cmp, f, sign * 0.5, like=mask), tie, like=mask)
                for cmp, sign, tie in (("gt", 1, ties[0]), ("lt", -1, ties[1])))
    step = node("sub", node("cast", up), node("cast", down))
    return _signed_whole(low, node, mask, x, small, node("add", t, step), fx.meta["val"])


def _signed_whole(low, node, mask, x: int, small: int, whole: int, out: torch.Tensor) -> _Value:
    """``whole`` where |x| < 2²³ (a zero taking x's sign, x·0, as eager's), x elsewhere."""
    signed = node("where", node("eq", whole, 0.0, like=mask), node("mul", x, 0.0), whole)
    return low.fresh("where", [small, signed, x], out)


def _floor_ceil_trunc(low, fx, args, kwargs):
    """trunc(x) by two casts (where |x| < 2²³), floor(x) = t − 1 where t > x, ceil(x) = t + 1 where
    t < x, frac(x) = x − trunc(x); exact ops only, eager's bits."""
    node, mask, ints = _emitter(low, fx.meta["val"])
    x = low.node_of(args[0])
    small, inside, t = _truncation(node, mask, ints, x)
    if fx.target is aten.floor.default:
        t = node("sub", t, node("cast", node("gt", t, inside, like=mask)))
    elif fx.target is aten.ceil.default:
        t = node("add", t, node("cast", node("lt", t, inside, like=mask)))
    whole = _signed_whole(low, node, mask, x, small, t, fx.meta["val"])
    return low.fresh("sub", [x, whole.node], fx.meta["val"]) if fx.target is aten.frac.default else whole


def _isnan_isinf(low, fx, args, kwargs):
    """isnan(x) as x != x, isinf(x) as |x| > the largest float32."""
    x = args[0]
    if fx.target is aten.isnan.default:
        return low.op("ne", fx, [x, x])
    absolute = low.fresh("abs", [low.node_of(x)], torch.empty(x.meta.shape, dtype=x.meta.dtype, device="meta"))
    return low.op("gt", fx, [absolute, _FLOAT32_MAX])


def _rsub(low, fx, args, kwargs):
    return low.op("sub", fx, [args[1], args[0]])


def _clamp(low, fx, args, kwargs):
    x, lo, hi = (list(args) + [None, None])[:3]
    lo, hi = kwargs.get("min", lo), kwargs.get("max", hi)
    if lo is not None:
        x = low.op("maximum", fx, [x, lo])
    if hi is not None:
        x = low.op("minimum", fx, [x, hi])
    return x


def _clamp_min(low, fx, args, kwargs):
    return low.op("maximum", fx, list(args[:2]))


def _clamp_max(low, fx, args, kwargs):
    return low.op("minimum", fx, list(args[:2]))


def _where(low, fx, args, kwargs):
    cond, a, b = args
    dtype = fx.meta["val"].dtype
    return low.fresh("where", [low.node_of(cond), low.node_of(a, dtype), low.node_of(b, dtype)], fx.meta["val"])


def _masked_fill(low, fx, args, kwargs):
    x, mask, value = args
    return low.fresh("where", [low.node_of(mask), low.node_of(value, x.meta.dtype), low.node_of(x)], fx.meta["val"])


def _threshold_backward(low, fx, args, kwargs):
    g, x, threshold = args
    return low.op("threshold_backward", fx, [g, x], (f32_bits(threshold),))


def _gelu(low, fx, args, kwargs):  # the exact GELU (the tanh approximation is DECOMPOSED)
    name, arity = ("gelu", 1) if fx.target is aten.gelu.default else ("gelu_backward", 2)
    return low.op(name, fx, list(args[:arity]))


def _log1p_expm1(low, fx, args, kwargs):
    """log1p(x) as log(1 + x), expm1(x) as exp(x) − 1 (what the decomposed activations use)."""
    x, meta = args[0], fx.meta["val"]
    if fx.target is aten.log1p.default:
        return low.fresh("log", [low.fresh("add", [low.node_of(x), low.node_of(1.0)], meta).node], meta)
    return low.fresh("sub", [low.fresh("exp", [low.node_of(x)], meta).node, low.node_of(1.0)], meta)


def _reduce(name):
    def handler(low, fx, args, kwargs):
        x = args[0]
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
        rank = x.meta.dim()
        dims = sorted(range(rank) if dims is None or dims == [] else {d % rank for d in dims})
        if kwargs.get("dtype") not in (None, x.meta.dtype):
            raise GraphError(f"{name} with a dtype change is not supported, at {low.source}")
        if name == "sum" and math.prod(x.meta.shape[dims[-1] + 1:]) > WIDE_COLUMNS:
            return _sum_moved_last(low, fx, x, dims)
        return low.op(name, fx, [x], (int(bool(keepdim)), *dims))
    return handler


def _sum_moved_last(low, fx, x, dims: list[int]) -> _Value:
    """A sum whose terms lie more than WIDE_COLUMNS apart (a bias gradient over positions of a wide
    layer): the summed dims are moved last by a view node, so the judge reads contiguous terms."""
    rank = x.meta.dim()
    kept = [d for d in range(rank) if d not in dims]
    moved = low.node_of(_Value(x.node, x.meta.permute(kept + dims)))
    like = torch.empty([x.meta.shape[d] for d in kept], dtype=x.meta.dtype, device="meta")
    total = low.fresh("sum", [moved], like, (0, *range(len(kept), rank)))
    return _Value(total.node, total.meta.reshape(fx.meta["val"].shape))


def _sum_all(low, fx, args, kwargs):
    x = args[0]
    return low.op("sum", fx, [x], (0, *range(x.meta.dim())))



def _matmul(low, fx, args, kwargs):
    """mm, bmm and addmm (bias first). A B wider than WIDE_COLUMNS is given transposed (attrs [1])
    so the judge reads its rows: a linear layer's weight is that transpose already, any other B
    becomes a view node."""
    name = {aten.mm.default: "mm", aten.bmm.default: "bmm", aten.addmm.default: "addmm"}[fx.target]
    if name == "addmm" and (kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1):
        raise GraphError(f"addmm with beta/alpha other than 1 is not supported, at {low.source}")
    *bias, a, b = args[:3] if name == "addmm" else args[:2]
    if b.meta.shape[-1] <= WIDE_COLUMNS:
        return low.op(name, fx, [*bias, a, b])
    b_t = low.constant(b.const.transpose(-1, -2)) if b.const is not None else _Value(b.node, b.meta.transpose(-1, -2))
    return low.op(name, fx, [*bias, a, b_t], (1,))


def _conv_attrs(stride, padding, dilation, groups, low) -> list[int]:
    if len(stride) == 1:  # a 1-d convolution: the 2-d one over a height of 1 (as eager runs it)
        return [1, *stride, 0, *padding, 1, *dilation, groups]
    if len(stride) != 2:
        raise GraphError(f"only 1-d and 2-d convolutions are supported, at {low.source}")
    return [*stride, *padding, *dilation, groups]


def _as_2d(low, tensors: Sequence[Any], one_d: bool) -> list[Any]:
    """A 1-d convolution's inputs, outputs and weights with a height of 1 inserted (views)."""
    return [low.view(aten.unsqueeze.default, [t, 2], {}) if one_d else t for t in tensors]


def _as_1d(low, value: _Value, one_d: bool) -> _Value:
    return low.view(aten.squeeze.dim, [value, 2], {}) if one_d else value


def _convolution(low, fx, args, kwargs):
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = args
    attrs, one_d = _conv_attrs(stride, padding, dilation, groups, low), len(stride) == 1
    if transposed:
        return _transposed_convolution(low, fx, x, w, bias, attrs, one_d)
    inputs = _as_2d(low, [x, w], one_d) + ([bias] if bias is not None else [])
    like = fx.meta["val"].unsqueeze(2) if one_d else fx.meta["val"]
    out = low.fresh("conv2d", [low.node_of(i) for i in inputs], like, attrs + [int(bias is not None)])
    return _as_1d(low, out, one_d)


def _meta(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(list(shape), dtype=dtype, device="meta")


def _transposed_convolution(low, fx, x, w, bias, attrs, one_d):
    """A transposed convolution is the input gradient of the convolution it transposes: a
    ``conv2d_grad_input`` node reading ``x`` as the gradient, the output's shape (output padding
    included) carried by a view of zeros, plus the bias."""
    out = fx.meta["val"]
    shape = [*out.shape[:2], 1, *out.shape[2:]] if one_d else list(out.shape)
    x2, w2 = _as_2d(low, [x, w], one_d)
    carrier = low.node_of(_zeros(low, shape))
    y = low.fresh("conv2d_grad_input", [low.node_of(x2), carrier, low.node_of(w2)], _meta(shape), attrs + [1])
    if bias is not None:
        channel = low.view(aten.view.default, [bias, [1, -1, 1, 1]], {})
        y = low.fresh("add", [y.node, low.node_of(channel)], _meta(shape))
    return _as_1d(low, y, one_d)


def _transposed_convolution_backward(low, fx, go, x, w, attrs, one_d, mask):
    """Its gradients: the input's is the convolution of the output gradient (``conv2d``), the
    weight's the convolution's weight gradient with the roles of input and gradient swapped,
    the bias's the output gradient summed over all but the channel."""
    go2, x2, w2 = (low.node_of(t) for t in _as_2d(low, [go, x, w], one_d))
    vals = fx.meta["val"]
    out: list = [None, None, None]
    if mask[0]:
        like = [*vals[0].shape[:2], 1, *vals[0].shape[2:]] if one_d else vals[0].shape
        out[0] = _as_1d(low, low.fresh("conv2d", [go2, w2], _meta(like), attrs + [0]), one_d)
    if mask[1]:
        weight_grad = low.fresh("conv2d_grad_weight", [x2, go2, w2], _meta(low.nodes[w2].shape), attrs + [2])
        out[1] = _as_1d(low, weight_grad, one_d)
    if mask[2]:
        dims = [d for d in range(go.meta.dim()) if d != 1]
        out[2] = low.fresh("sum", [low.node_of(go)], _meta(vals[2].shape), (0, *dims))
    return out


def _convolution_backward(low, fx, args, kwargs):
    go, x, w, _bias_sizes, stride, padding, dilation, transposed, _out_pad, groups, mask = args
    attrs, one_d = _conv_attrs(stride, padding, dilation, groups, low), len(stride) == 1
    if transposed:
        return _transposed_convolution_backward(low, fx, go, x, w, attrs, one_d, mask)
    bits = sum(1 << i for i, wanted in enumerate(mask) if wanted)
    ids = [low.node_of(t) for t in _as_2d(low, [go, x, w], one_d)]
    out: list = []
    for name, val, wanted in zip(("conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"), fx.meta["val"], mask):
        spatial = one_d and name != "conv2d_grad_bias"  # the bias gradient has no height
        out.append(_as_1d(low, low.fresh(name, ids, val.unsqueeze(2) if spatial else val, attrs + [bits]), spatial)
                   if wanted else None)
    return out


def _max_pool(low, fx, args, kwargs):
    x, kernel, stride, padding, dilation, ceil = (list(args) + [None] * 6)[:6]
    attrs = _pool_attrs(kernel, stride, padding, dilation, ceil)
    return low.group(["max_pool2d", "max_pool2d_indices"], fx, [x], attrs)


def _pool_attrs(kernel, stride, padding, dilation, ceil) -> list[int]:
    kernel = pair(kernel, None)
    return [*kernel, *pair(stride, kernel), *pair(padding, [0, 0]), *pair(dilation, [1, 1]), int(bool(ceil))]


def _max_pool_backward(low, fx, args, kwargs):
    go, x, kernel, stride, padding, dilation, ceil, indices = args
    return low.op("max_pool2d_grad", fx, [go, x, indices], _pool_attrs(kernel, stride, padding, dilation, ceil))


def _layer_norm(low, fx, args, kwargs):
    x, shape, w, b, eps = args
    attrs = [len(shape), f32_bits(eps), int(w is not None), int(b is not None)]
    return low.group(["layer_norm", "layer_norm_mean", "layer_norm_rstd"], fx, [x, w, b], attrs)


def _layer_norm_backward(low, fx, args, kwargs):
    go, x, shape, mean, rstd, w, b, mask = args
    bits = sum(1 << i for i, wanted in enumerate(mask) if wanted)
    names = [n if wanted else None for n, wanted in
             zip(("layer_norm_grad_input", "layer_norm_grad_weight", "layer_norm_grad_bias"), mask)]
    attrs = [len(shape), bits, int(w is not None), int(b is not None)]
    return low.group(names, fx, [go, x, mean, rstd, w, b], attrs)


def _group_norm(low, fx, args, kwargs):
    x, w, b, n, c, hw, groups, eps = args
    attrs = [n, c, hw, groups, f32_bits(eps), int(w is not None), int(b is not None)]
    return low.group(["group_norm", "group_norm_mean", "group_norm_rstd"], fx, [x, w, b], attrs)


def _softmax(low, fx, args, kwargs):
    x, dim = args[0], args[1] % args[0].meta.dim()
    return low.op(SOFTMAX[fx.target], fx, [x], (dim,))


def _softmax_backward(low, fx, args, kwargs):
    g, y, dim = args[0], args[1], args[2] % args[0].meta.dim()
    name = "softmax_grad" if fx.target is aten._softmax_backward_data.default else "log_softmax_grad"
    return low.op(name, fx, [g, y], (dim,))


def _nll_loss(low, fx, args, kwargs):
    logp, target, weight, reduction, ignore = args
    if weight is not None:
        raise GraphError(f"class weights in the loss are not supported, at {low.source}")
    return low.group(["nll_loss", "nll_loss_weight"], fx, [logp, target], [reduction, ignore + SIGNED])


def _nll_loss_backward(low, fx, args, kwargs):
    go, logp, target, weight, reduction, ignore, total = args
    return low.op("nll_loss_grad", fx, [go, logp, target, total], (reduction, ignore + SIGNED))


def _embedding(low, fx, args, kwargs):
    w, idx = args[:2]
    padding = args[2] if len(args) > 2 else -1
    return low.op("embedding", fx, [w, idx], (padding + SIGNED,))


def _embedding_backward(low, fx, args, kwargs):
    go, idx, num_weights, padding, scale = args
    return low.op("embedding_grad", fx, [go, idx], (num_weights, padding + SIGNED, int(scale)))


def _leaky_relu(low, fx, args, kwargs):
    """leaky_relu(x) = x where x > 0, else x·slope; its backward g where x > 0, else g·slope (eager's
    kernels, exactly: the slope rounded to float32 once)."""
    if fx.target is aten.leaky_relu.default:
        value, x, slope = args[0], args[0], args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
    else:
        value, x, slope = args[0], args[1], args[2]
    mask = torch.empty(fx.meta["val"].shape, dtype=torch.bool, device="meta")
    positive = low.fresh("gt", [low.node_of(x), low.node_of(0.0)], mask)
    return low.op("where", fx, [positive, value, low.op("mul", fx, [value, slope])])


def _zeros(low, shape: Sequence[int]) -> _Value:
    """Zeros of ``shape`` as a view of one zero constant with every stride 0 (no stored tensor)."""
    return _Value(low.node_of(0.0), torch.empty((), device="meta").expand(*shape))


def _slice_backward(low, fx, args, kwargs):
    """The gradient of ``x[..., start:end:step]`` (``select``: of ``x[..., index]``) along ``dim``:
    the incoming gradient between zeros, concatenated; with a step, each gradient element first
    followed by step − 1 zeros (a cat along a new dim, merged by a view)."""
    if fx.target is aten.select_backward.default:
        grad, sizes, dim, index = args
        dim %= len(sizes)
        index %= sizes[dim]
        grad = low.view(aten.unsqueeze.default, [grad, dim], {})
        start, end = index, index + 1
    else:
        grad, sizes, dim, start, end, step = args
        dim %= len(sizes)
        start = min(max(start + sizes[dim] if start < 0 else start, 0), sizes[dim])
        if step > 1:
            grad = _spread(low, grad, dim, step, sizes[dim] - start)
        end = start + grad.meta.shape[dim]
    zeros = [_zeros(low, [*sizes[:dim], width, *sizes[dim + 1:]]) if width else None
             for width in (start, sizes[dim] - end)]
    parts = [part for part in (zeros[0], grad, zeros[1]) if part is not None]
    return parts[0] if len(parts) == 1 else _cat(low, fx, [parts, dim], {})


def _spread(low, grad: _Value, dim: int, step: int, room: int) -> _Value:
    """``grad`` along ``dim`` with step − 1 zeros after each element, cut to ``room`` elements."""
    shape = list(grad.meta.shape)
    zeros = _zeros(low, [*shape[:dim + 1], step - 1, *shape[dim + 1:]])
    column = low.view(aten.unsqueeze.default, [grad, dim + 1], {})
    like = _meta([*shape[:dim + 1], step, *shape[dim + 1:]])
    woven = low.fresh("cat", [low.node_of(column), low.node_of(zeros)], like, (dim + 1,))
    merged = low.view(aten.reshape.default, [woven, [*shape[:dim], shape[dim] * step, *shape[dim + 1:]]], {})
    return merged if shape[dim] * step <= room else low.view(aten.slice.Tensor, [merged, dim, 0, room], {})


def _constant_pad(low, fx, args, kwargs):
    """F.pad with a constant: per padded dim a cat of the value's stride-0 views and the input
    (a negative pad, as in its gradient, a slice of it)."""
    x, pads = args[0], list(args[1])
    value = args[2] if len(args) > 2 else kwargs.get("value", 0.0)
    for i in range(0, len(pads), 2):
        dim = x.meta.dim() - 1 - i // 2
        before, after = pads[i], pads[i + 1]
        if before < 0 or after < 0:
            size = x.meta.shape[dim]
            x = low.view(aten.slice.Tensor, [x, dim, max(-before, 0), size - max(-after, 0)], {})
        filled = [_Value(low.node_of(float(value)), torch.empty((), device="meta").expand(
            *x.meta.shape[:dim], width, *x.meta.shape[dim + 1:])) for width in (max(before, 0), max(after, 0))]
        parts = [part for part, width in zip((filled[0], x, filled[1]), (max(before, 0), 1, max(after, 0))) if width]
        if len(parts) > 1:
            like = torch.empty([*x.meta.shape[:dim], sum(p.meta.shape[dim] for p in parts), *x.meta.shape[dim + 1:]],
                               dtype=x.meta.dtype, device="meta")
            x = low.fresh("cat", [low.node_of(p) for p in parts], like, (dim,))
    return x


def _cat(low, fx, args, kwargs):
    tensors, dim = list(args[0]), (args[1] if len(args) > 1 else kwargs.get("dim", 0)) % fx.meta["val"].dim()
    dtype = _compute_dtype(tensors)
    while len(tensors) > MAX_INPUTS:  # a node reads at most MAX_INPUTS tensors: concatenate in a tree
        groups = [tensors[i:i + MAX_INPUTS] for i in range(0, len(tensors), MAX_INPUTS)]
        tensors = [group[0] if len(group) == 1 else
                   low.fresh("cat", [low.node_of(t, dtype) for t in group], torch.cat([t.meta for t in group], dim), (dim,))
                   for group in groups]
    return low.op("cat", fx, tensors, (dim,))


def _stack(low, fx, args, kwargs):
    """stack(tensors, dim): a cat of the tensors, each viewed with that dim inserted."""
    tensors, dim = list(args[0]), (args[1] if len(args) > 1 else kwargs.get("dim", 0)) % fx.meta["val"].dim()
    inserted = [low.view(aten.unsqueeze.default, [t, dim], {}) if isinstance(t, _Value) else t for t in tensors]
    return _cat(low, fx, [inserted, dim], {})


_HANDLERS: dict[Any, Callable] = {
    **{op: _binary for op in BINARY},
    **{op: _unary for op in UNARY},
    aten.bitwise_and.Tensor: _bitwise_bool, aten.bitwise_or.Tensor: _bitwise_bool,
    aten.bitwise_not.default: _bitwise_bool,
    aten.sgn.default: _sign, aten.sign.default: _sign,
    aten.isnan.default: _isnan_isinf, aten.isinf.default: _isnan_isinf,
    aten.round.default: _round, aten.floor.default: _floor_ceil_trunc, aten.ceil.default: _floor_ceil_trunc,
    aten.trunc.default: _floor_ceil_trunc, aten.frac.default: _floor_ceil_trunc,
    aten.pow.Tensor_Scalar: _pow, aten.rsub.Scalar: _rsub, aten.clamp.default: _clamp,
    aten.clamp.Tensor: _clamp, aten.clamp_min.Tensor: _clamp_min, aten.clamp_max.Tensor: _clamp_max,
    aten.where.self: _where, aten.masked_fill.Scalar: _masked_fill,
    aten.threshold_backward.default: _threshold_backward,
    aten.gelu.default: _gelu, aten.gelu_backward.default: _gelu,
    aten.log1p.default: _log1p_expm1, aten.expm1.default: _log1p_expm1,
    aten.sum.dim_IntList: _reduce("sum"), aten.sum.default: _sum_all, aten.mean.dim: _reduce("mean"),
    aten.mean.default: _reduce("mean"),
    aten.amax.default: _reduce("amax"),
    aten.mm.default: _matmul, aten.bmm.default: _matmul, aten.addmm.default: _matmul,
    aten.convolution.default: _convolution, aten.convolution_backward.default: _convolution_backward,
    aten.max_pool2d_with_indices.default: _max_pool,
    aten.max_pool2d_with_indices_backward.default: _max_pool_backward,
    aten.native_layer_norm.default: _layer_norm, aten.native_layer_norm_backward.default: _layer_norm_backward,
    aten.native_group_norm.default: _group_norm,
    **{op: _softmax for op in SOFTMAX},
    aten._softmax_backward_data.default: _softmax_backward,
    aten._log_softmax_backward_data.default: _softmax_backward,
    aten.nll_loss_forward.default: _nll_loss, aten.nll_loss_backward.default: _nll_loss_backward,
    aten.embedding.default: _embedding, aten.embedding_dense_backward.default: _embedding_backward,
    aten.cat.default: _cat, aten.stack.default: _stack, aten.constant_pad_nd.default: _constant_pad,
    aten.leaky_relu.default: _leaky_relu, aten.leaky_relu_backward.default: _leaky_relu,
    aten.select_backward.default: _slice_backward, aten.slice_backward.default: _slice_backward,
}
