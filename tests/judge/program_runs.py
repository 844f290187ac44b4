"""Training programs of every family the program rules must cover, and their honest step traces
(shared by the rule tests and the cross-hardware test)."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offchain.dispute import program_rules as R
from offchain.ml.capture import ExportConfig, export_program, initial_tensors
from offchain.ml.models import CNN, GPT, MLP
from offchain.ml.optim import OptimizerConfig
from offchain.ml.ops import DTYPES, OPS, Node
from offchain.ml.program import ProgramExecutor, execution_context, step_key


class Zoo(nn.Module):
    """Configurations the presets do not reach: strided dilated grouped conv, GroupNorm without
    affine, padded ceil-mode pooling, mean/amax/softmax, an embedding with padding_idx, a LayerNorm
    whose rows have |mean| > std, tanh/sigmoid/SiLU/erf/exp/log/rsqrt, comparisons, logical masks, round,
    leaky ReLU, the gradients of a slice and a select, a 1-d convolution, and kernels written with
    other ops: BatchNorm (its running statistics state), softplus (log1p, exp), the tanh GELU,
    hardswish, an average pool not counting its padding (a depthwise convolution of constant ones
    over a constant map of counts), reflection padding and a fractional nearest upsample (lookups of
    constant indices: embedding nodes, their gradients embedding_grad) and a gather likewise, InstanceNorm, an adaptive max pool and a
    transposed convolution (a conv2d_grad_input node; its gradients conv2d, conv2d_grad_weight, sum)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2)
        self.group = nn.GroupNorm(3, 6, affine=False)
        self.norm = nn.LayerNorm(54)
        self.tokens = nn.Embedding(5, 54, padding_idx=0)
        self.line = nn.Conv1d(4, 2, 5, stride=3, padding=1)
        self.batch = nn.BatchNorm2d(4)
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        self.head = nn.Linear(54 + 12 + 2 + 4 + 12 + 2, 10)

    def forward(self, x):
        h = F.max_pool2d(self.group(self.conv(x)), 3, stride=2, padding=1, ceil_mode=True)
        ids = (x[:, 0, 0, :3].abs() * 2).long().clamp(max=4)
        f = self.norm(h.flatten(1) + self.tokens(ids).sum(1) + 10.0)
        a = torch.tanh(f) * torch.sigmoid(f) + F.silu(f) + torch.erf(f) * torch.exp(-f.abs())
        a = a + torch.log(f * f + 1) * torch.rsqrt(f * f + 1) + F.gelu(f, approximate="tanh") * F.hardswish(f)
        keep = torch.logical_or(torch.logical_and(a > 0, torch.logical_not(a > 1)), a < -1)
        keep = torch.logical_and(keep, (a.ne(0.25) & (a >= -2)) | (a <= -3))
        f = torch.where(keep, a, 0.5 * a) + torch.round(a * 4.0) * 0.125  # round's decomposition (casts, where)
        # leaky ReLU (gt, where, mul) of a slice and a selected column: their gradients are zeros and cat
        f = f + F.leaky_relu(f[:, 1:4].mean(1, keepdim=True) - f[:, -1].unsqueeze(1), 0.2)
        f = f + 0.25 * torch.gather(f, 1, (torch.arange(54) * 7 % 54).expand(f.shape[0], 54))  # a lookup, its sums
        pooled = torch.cat([torch.softmax(h.mean(dim=(2, 3)), -1), h.amax(dim=(2, 3))], dim=1)
        lines = self.line(x.flatten(2)).amax(-1)  # a 1-d convolution: the 2-d one over a height of 1
        soft = F.avg_pool2d(F.softplus(self.batch(x)), 3, stride=2, padding=1, count_include_pad=False).amax(dim=(2, 3))
        resized = F.interpolate(F.pad(h, (1, 0, 0, 1), mode="reflect"), scale_factor=1.5)  # gathers, their sums
        grown = F.adaptive_max_pool2d(F.instance_norm(resized), (1, 2)).flatten(1)
        up = self.up(torch.tanh(x)).amax(dim=(2, 3))
        return self.head(torch.cat([f, pooled, lines, soft, grown, up], 1))


class Recurrent(nn.Module):
    """An LSTM, then a bidirectional GRU (PyTorch's composite form: matmuls, sigmoid, tanh, a stack)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.gru = nn.GRU(6, 5, batch_first=True, bidirectional=True)
        self.head = nn.Linear(10, 10)

    def forward(self, x):
        return self.head(self.gru(self.lstm(x)[0])[0][:, -1])


ADAMW = OptimizerConfig("adamw", 3e-3, weight_decay=0.01, clip_norm=1.0)
FAMILIES = {
    "mlp": (lambda: MLP(12, (8,), 5), ExportConfig(6, (12,))),
    "cnn": (lambda: CNN(1, 8, 8, 10), ExportConfig(6, (1, 8, 8), optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))),
    # width 48: the MLP's 192 columns are read as rows of a transposed operand (matmul attrs [1])
    "gpt": (lambda: GPT(40, 12, 48, 4, 1), ExportConfig(3, (12,), loss="lm_cross_entropy", optimizer=ADAMW)),
    "zoo": (Zoo, ExportConfig(6, (4, 7, 7), optimizer=OptimizerConfig("adam", 1e-2))),
    "recurrent": (Recurrent, ExportConfig(6, (5, 4), optimizer=OptimizerConfig("adam", 1e-2))),
    "dropout": (lambda: nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 16), nn.GELU(),
                                      nn.Dropout(0.1), nn.Linear(16, 10)),
                ExportConfig(6, (12,), optimizer=OptimizerConfig("adamw", 1e-2, weight_decay=0.1))),
}


def flat(t: torch.Tensor) -> np.ndarray:
    """C-order element values as the rules take them: float32 bit patterns, int64, bool 0/1."""
    t = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().view(np.uint32)
    return t.to(torch.int64).numpy()


class Run:
    """An exported program, one step's inputs, and its honest traces (1 and 2 threads)."""

    def __init__(self, name: str, family: tuple | None = None) -> None:
        torch.manual_seed(0)
        make, config = family or FAMILIES[name]
        model = make()
        self.program = export_program(model, config)
        weights = initial_tensors(model, self.program)
        self.state = [weights[slot.name] if slot.kind != "buffer" else torch.zeros(slot.shape) for slot in self.program.state]
        g = torch.Generator().manual_seed(1)
        if config.loss == "lm_cross_entropy":
            self.x = torch.randint(0, 40, (config.batch_size, config.data_dim), generator=g).float()
            self.y = torch.zeros(config.batch_size, dtype=torch.int64)
        else:
            self.x = torch.randn(config.batch_size, config.data_dim, generator=g)
            self.y = torch.randint(0, 10 if name != "mlp" else 5, (config.batch_size,), generator=g)
        self.hyper = config.optimizer.hyper_table(2)[1]
        self.traces = {threads: self.step(threads) for threads in (1, 2)}
        self.flats = {k: [flat(t) for t in trace] for k, trace in self.traces.items()}

    def step(self, threads: int | None, device: str = "cpu", strict: bool = True) -> list[torch.Tensor]:
        """The step's trace (on the CPU) run with every tensor on ``device``; ``strict=False`` lets
        kernels without a deterministic implementation run (PyTorch warns)."""
        on = [t.to(device) for t in (*self.state, self.x, self.y, self.hyper)]
        with execution_context(threads):
            torch.use_deterministic_algorithms(True, warn_only=not strict)
            trace = ProgramExecutor(self.program).run(on[:-3], *on[-3:], keep_trace=True, rng=step_key(3, 0)).trace
        return [t.cpu() for t in trace]

    def nodes(self):
        return [n for n in self.program.nodes if n.op in R.RULES]

    def inputs(self, node):
        return [self.program.nodes[i] for i in node.inputs]


def gather(node, ins, flats, index):
    """Input values for ``index`` through element_inputs (both stages for two-stage ops)."""
    def read(reads):
        return [[int(flats[node.inputs[p]][i]) for i in idx] for p, idx in reads]
    values = read(R.element_inputs(node, ins, index))
    if R.needs_values(node):
        values = read(R.element_inputs(node, ins, index, values))
    return values


def float64_kernel(node, trace, round_to=torch.float32):
    """The node's ATen kernel run in float64 on the float32 inputs, rounded to float32."""
    spec = OPS[node.op]
    args = [trace[i].double() if trace[i].dtype == torch.float32 else trace[i] for i in node.inputs]
    if node.op in ("softmax_grad", "log_softmax_grad"):
        fn = {"softmax_grad": torch.ops.aten._softmax_backward_data.default,
              "log_softmax_grad": torch.ops.aten._log_softmax_backward_data.default}[node.op]
        out = fn(args[0], args[1], node.attrs[0], torch.float64)
    else:
        out = spec.build(node)(args)
        if spec.group is not None:
            out = out[spec.group]
    return out.to(DTYPES[node.dtype]) if round_to is not None else out


def single(op, dtype, tensors, attrs, shape=()):
    """A node over leaf inputs, its kernel's output and the input values per position (``shape``:
    the output shape of ops whose kernel reads it, e.g. a view)."""
    ins = [Node(i, "const", {torch.float32: "f32", torch.int64: "i64", torch.bool: "bool"}[t.dtype], (), tuple(t.shape))
           for i, t in enumerate(tensors)]
    probe = Node(len(ins), op, dtype, tuple(range(len(ins))), tuple(shape), tuple(attrs))
    out = OPS[op].build(probe)(tensors)
    if OPS[op].group is not None:
        out = out[OPS[op].group]
    node = Node(len(ins), op, dtype, tuple(range(len(ins))), tuple(out.shape), tuple(attrs))
    return node, ins, [flat(t) for t in tensors] + [flat(out)]


@functools.cache
def run_of(name: str) -> Run:
    """One shared run per family for every test module."""
    return Run(name)
