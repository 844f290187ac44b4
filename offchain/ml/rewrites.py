"""Calls the op set has no node for, written with calls it has, while a training step is traced
(``capture.export_program``; docs/programs.md §2):

* ``POSITION_SUMS``: fused kernels whose reduction is longer than one judge call reads (the loss,
  the embedding and LayerNorm weight gradients over many positions, long means, LayerNorm and
  GroupNorm over long rows) as sums, one-hot matmuls and elementwise ops, which the game dissects;
* ``DECOMPOSED``: kernels with no node (activations, pools, resizing, padding, norms, flips,
  rolls, running sums, ...) by PyTorch's own decompositions or ours, and a wide convolution's
  input gradient by its flipped weight;
* ``BeforeAutograd``: calls rewritten before autograd sees them (max/min over a dim, 1x1 and
  strided convolutions whose reads would spread over more leaves than the game opens, circular
  padding, bilinear layers);
* ``batch_norm_steps``: BatchNorm layers whose running statistics become state;
* ``composite_rnns``: recurrent layers traced in PyTorch's composite form.

Each rewrite trains within float noise of eager PyTorch (``tests/ml/test_ml_program.py``).
"""

from __future__ import annotations

import contextlib
import copy
import math
import struct
from typing import Callable, Sequence

import torch
from torch._decomp import decomposition_table, get_decompositions
from torch.overrides import TorchFunctionMode

from .errors import GraphError

aten = torch.ops.aten


@contextlib.contextmanager
def composite_rnns(model: torch.nn.Module):
    """RNN, GRU and LSTM layers traced in PyTorch's composite form (matmuls, sigmoid, tanh, a stack
    of the steps), not oneDNN's fused CPU layer, which the op set has no node for: a global switch,
    so only while a model that has one is traced."""
    if not any(isinstance(module, torch.nn.RNNBase) for module in model.modules()):
        yield
        return
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


class BatchNormStep(torch.nn.Module):
    """A BatchNorm layer in training, as a program computes it: the batch's moments per channel as
    sums (Σx/n, Σ(x − mean)²/n, which the game dissects like GroupNorm's), and the running
    statistics' update (momentum-weighted, the variance unbiased) kept in ``updates`` rather than
    written in place, so the step returns it as state. Same parameter and buffer names."""

    def __init__(self, norm: torch.nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        if norm.track_running_stats and norm.momentum is None:
            raise GraphError(f"{type(norm).__name__}(momentum=None) keeps a cumulative average, which is not "
                             "supported: give it a momentum")
        self.eps, self.momentum = norm.eps, norm.momentum
        self.weight, self.bias = norm.weight, norm.bias
        for name, buffer in norm.named_buffers(recurse=False):
            self.register_buffer(name, buffer)
        self.tracks = norm.track_running_stats
        self.updates: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims, shape = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2)
        count = x.numel() // x.shape[1]
        if count < 2:
            raise GraphError(f"batch norm over {count} value per channel: a batch needs more than one")
        centred, mean, var = _moments_by_sums(x, dims)
        scale = torch.rsqrt(var + self.eps)
        y = centred * (scale * self.weight.reshape(shape) if self.weight is not None else scale)
        y = y + self.bias.reshape(shape) if self.bias is not None else y
        if self.tracks:
            m = self.momentum
            self.updates = ((1 - m) * self.running_mean + m * mean.reshape(-1),
                            (1 - m) * self.running_var + m * (var.reshape(-1) * (count / (count - 1))))
        return y


#: a running statistic's layer and which of its ``updates`` it is (0: the mean, 1: the variance)
Stats = dict[str, tuple[BatchNormStep, int]]


def batch_norm_steps(model: torch.nn.Module) -> tuple[torch.nn.Module, Stats]:
    """``model`` with each BatchNorm layer a :class:`BatchNormStep` (a copy; the model itself is
    untouched), and the running statistics those layers keep, by name (the state slots the step
    updates)."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.instancenorm._InstanceNorm) and module.track_running_stats:
            raise GraphError(f"{name or 'the model'} is a {type(module).__name__} with track_running_stats: "
                             "not supported (without, it is)")
    norms = [name for name, module in model.named_modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model, {}
    if "" in norms:
        raise GraphError("the model itself is a BatchNorm layer: wrap it in a module")
    try:
        model = copy.deepcopy(model)
    except Exception as exc:  # the model's own attributes may not copy
        raise GraphError(f"the model cannot be copied to rewrite its BatchNorm layers: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    stats: Stats = {}
    for name in norms:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        step = BatchNormStep(getattr(parent, child))
        setattr(parent, child, step)
        if step.tracks:
            stats[f"{name}.running_mean"], stats[f"{name}.running_var"] = (step, 0), (step, 1)
    return model, stats


#: a 1x1 convolution over planes of more elements than this, with more than 16 channels, reads
#: its reduction's terms a plane apart over more leaves than the dispute game opens (16 of 2 KiB)
SPREAD_PLANE = 128


def _strided(x: torch.Tensor, stride: Sequence[int]) -> torch.Tensor:
    """Every ``stride``-th pixel of each spatial dim (a view)."""
    return x[(slice(None), slice(None), *(slice(None, None, step) for step in stride))]


def _pointwise_by_matmul(x, weight, bias, stride: Sequence[int]):
    """A 1x1 convolution (groups 1, no padding) as a matmul over channels: the input's strided
    pixels channels-last (a view node), times the weight's (out, in) matrix, plus the bias; its
    reductions read contiguous rows wherever the convolution's would spread over channel planes."""
    picked = _strided(x, stride)
    rows = picked.movedim(1, -1).reshape(-1, x.shape[1])
    matrix = weight.reshape(weight.shape[0], -1).t()
    out = torch.addmm(bias, rows, matrix) if bias is not None else rows @ matrix
    # read out channels-first, so the layers after it do not carry a channels-last layout
    return out.reshape(picked.shape[0], *picked.shape[2:], weight.shape[0]).movedim(-1, 1).contiguous()


def _weight_spread(weight: torch.Tensor, taps: int) -> bool:
    """Whether a convolution's input gradient, where an input pixel meets ``taps`` taps of each
    output channel, may read its weight over more leaves than the game opens: a chunk of 64 terms
    reads 64 / taps output channels, a weight row (``C_in·kh·kw`` floats) apart, in 2 KiB leaves
    (half the game's 16, as a row's taps may straddle two)."""
    channels = min(-(-64 // taps), weight.shape[0])
    return channels > 8 and channels * 4 * math.prod(weight.shape[1:]) > 8 * 2048


def _strided_spread(weight: torch.Tensor, stride: Sequence[int]) -> bool:
    """A strided convolution's: an input pixel meets as few as ⌊k/stride⌋ taps per output channel."""
    if all(step == 1 for step in stride):
        return False
    return _weight_spread(weight, math.prod(max(size // step, 1) for size, step in zip(weight.shape[2:], stride)))


def _flipped(weight: torch.Tensor) -> torch.Tensor:
    """The weight with its kernel dims reversed, by products with constant anti-identities (exact:
    each sum has one non-zero term)."""
    for dim in range(2, weight.dim()):
        size = weight.shape[dim]
        reverse = torch.eye(size, dtype=weight.dtype).flip(0)
        weight = torch.matmul(reverse, weight.movedim(dim, -2)).movedim(-2, dim)
    return weight


def _convolution_backward_by_flipped_weight(go, x, weight, bias_sizes, stride, padding, dilation, transposed,
                                            output_padding, groups, mask):
    """A convolution's input gradient as the stride-1 convolution of the output gradient with the
    flipped weight, input and output channels swapped, where the fused kernel's would read the
    weight over too many leaves (:func:`_weight_spread`): the flipped weight is read a kernel
    (k·k floats) per output channel. Padding d·(k − 1) − p; with a stride, the output gradient is
    first spread (``slice_backward``: s − 1 zeros between its elements, the padding around them).
    The other gradients keep the fused kernel."""
    sizes = weight.shape[2:]
    taps = [max(size // step, 1) if step > 1 else min(size, p // d + 1)
            for size, step, p, d in zip(sizes, stride, padding, dilation)]
    reach = [d * (size - 1) - p for size, p, d in zip(sizes, padding, dilation)]
    if (not mask[0] or transposed or groups != 1 or min(reach) < 0
            or not _weight_spread(weight, math.prod(taps))):
        return NotImplemented
    flipped = _flipped(weight).transpose(0, 1)
    if all(step == 1 for step in stride):
        grad_input = aten.convolution.default(go, flipped, None, stride, reach, dilation, False, output_padding, 1)
    else:
        spread = go
        for dim, (step, start) in enumerate(zip(stride, reach), start=2):
            shape = list(spread.shape)
            shape[dim] = x.shape[dim] + dilation[dim - 2] * (sizes[dim - 2] - 1)
            spread = aten.slice_backward.default(spread, shape, dim, start, start + (go.shape[dim] - 1) * step + 1, step)
        zeros = [0] * len(stride)
        grad_input = aten.convolution.default(spread, flipped, None, [1] * len(stride), zeros, dilation, False, zeros, 1)
    rest = aten.convolution_backward.default(go, x, weight, bias_sizes, stride, padding, dilation, False,
                                             output_padding, 1, [False, mask[1], mask[2]])
    return grad_input, rest[1], rest[2]


class BeforeAutograd(TorchFunctionMode):
    """Calls rewritten before autograd sees them (while tracing):

    * ``max``/``min`` over a dim (values and indices) as ``amax``/``amin`` and ``argmax``/``argmin``,
      and over every element as ``amax``/``amin``, so the gradient is amax's (shared among ties)
      and not a scatter by the indices; indices nobody reads are dead code, read ones are refused
      (no node for argmax);
    * a 1x1 convolution whose reads would spread over channel planes (``SPREAD_PLANE``) as a
      matmul over channels (:func:`_pointwise_by_matmul`);
    * a grouped strided convolution whose input gradient would read its weight over too many
      leaves (:func:`_strided_spread`) as the stride-1 one, strided by a slice (its gradient reads
      all taps of fewer output channels; the layer costs stride_h·stride_w times the work); an
      ungrouped one keeps its stride, its input gradient by the flipped weight (``DECOMPOSED``);
    * circular padding (PyTorch writes it into an empty tensor) as gathers (:func:`_edge_pad`);
    * a bilinear layer (a fused trilinear kernel) as an einsum, weight normalisation's fused
      kernel as v·g/‖v‖;
    * negative positions in an indexing list wrapped (:func:`_wrapped_lists`);
    * an embedding bag of fixed-size bags as lookups and a reduction (:func:`_embedding_bag_by_lookups`);
    * products and running products of floats as trees and scans of elementwise products."""

    REDUCTIONS = {torch.max: (torch.amax, torch.argmax, torch.return_types.max),
                  torch.Tensor.max: (torch.amax, torch.argmax, torch.return_types.max),
                  torch.min: (torch.amin, torch.argmin, torch.return_types.min),
                  torch.Tensor.min: (torch.amin, torch.argmin, torch.return_types.min)}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.REDUCTIONS:
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            if len(args) == 1 and not kwargs:  # over every element: the value only
                return self.REDUCTIONS[func][0](args[0])
            if isinstance(dim, int):
                keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
                values, indices, result = self.REDUCTIONS[func]
                return result((values(args[0], dim, keepdim), indices(args[0], dim, keepdim)))
        if func in (torch.conv1d, torch.conv2d):
            x, weight, bias, stride, padding, dilation, groups = (list(args) + [None, 1, 0, 1, 1][len(args) - 2:])[:7]
            stride, padding = kwargs.get("stride", stride), kwargs.get("padding", padding)
            dilation, groups = kwargs.get("dilation", dilation), kwargs.get("groups", groups)
            bias, spatial = kwargs.get("bias", bias), weight.dim() - 2
            stride = [stride] * spatial if isinstance(stride, int) else list(stride) * (spatial if len(stride) == 1 else 1)
            unpadded = padding in (0, "valid") or (isinstance(padding, (list, tuple)) and not any(padding))
            pointwise = math.prod(weight.shape[2:]) == 1 and groups == 1 and unpadded
            if pointwise and x.dim() == weight.dim() and max(weight.shape[:2]) > 16 \
                    and math.prod(x.shape[2:]) > SPREAD_PLANE:
                return _pointwise_by_matmul(x, weight, bias, stride)
            if groups != 1 and x.dim() == weight.dim() and _strided_spread(weight, stride) \
                    and isinstance(padding, (int, list, tuple)):
                return _strided(func(x, weight, bias, 1, padding, dilation, groups), stride)
        if func is torch.Tensor.__getitem__ and isinstance(args[1], (list, tuple)):
            return func(args[0], _wrapped_lists(args[0], args[1]))
        if func is torch.nn.functional.embedding_bag:
            bagged = _embedding_bag_by_lookups(*args, **kwargs)
            if bagged is not NotImplemented:
                return bagged
        if func in (torch.prod, torch.Tensor.prod) and args[0].is_floating_point():
            return _product_tree(args[0], *args[1:], **kwargs)
        if func in (torch.cumprod, torch.Tensor.cumprod) and args[0].is_floating_point():
            return _running_products(args[0], *args[1:], **kwargs)
        if func is torch._weight_norm:  # v·g/‖v‖ over every dim but ``dim`` (weight normalisation)
            v, g, dim = (list(args) + [kwargs.get("dim", 0)])[:3]
            dims = [d for d in range(v.dim()) if d != dim % v.dim()] if dim != -1 else list(range(v.dim()))
            return v * (g / torch.sqrt((v * v).sum(dims, keepdim=True)))
        if func is torch.bilinear:  # x1ᵀ·W_o·x2 (+ b_o) for each output o, as one einsum of matmuls
            x1, x2, weight, bias = (list(args) + [kwargs.get("bias")])[:4]
            out = torch.einsum("...i,oij,...j->...o", x1, weight, x2)
            return out + bias if bias is not None else out
        if func is torch.nn.functional.pad and (args[2] if len(args) > 2 else kwargs.get("mode")) == "circular":
            return _edge_pad("circular")[0](args[0], args[1] if len(args) > 1 else kwargs["pad"])
        return func(*args, **kwargs)


_BAG_ARGS = ("input", "weight", "offsets", "max_norm", "norm_type", "scale_grad_by_freq", "mode", "sparse",
             "per_sample_weights", "include_last_offset", "padding_idx")


def _embedding_bag_by_lookups(*args, **kwargs):
    """``F.embedding_bag`` of fixed-size bags (2-d input, no offsets): the rows looked up
    (``embedding``, a padding index's rows left out of sums and means), weighted per sample if
    given, then summed, averaged or maxed over each bag; other forms keep the kernel."""
    given = {**dict(zip(_BAG_ARGS, args)), **kwargs}
    bags, weight = given["input"], given["weight"]
    mode, padding = given.get("mode", "mean"), given.get("padding_idx")
    if bags.dim() != 2 or given.get("offsets") is not None or given.get("max_norm") is not None \
            or given.get("scale_grad_by_freq") or (padding is not None and mode == "max"):
        return NotImplemented
    rows = torch.nn.functional.embedding(bags, weight)
    if given.get("per_sample_weights") is not None:
        rows = rows * given["per_sample_weights"].unsqueeze(-1)
    if mode == "max":
        return rows.amax(1)
    kept = None if padding is None else (bags != padding % weight.shape[0]).to(weight.dtype).unsqueeze(-1)
    total = (rows * kept if kept is not None else rows).sum(1)
    if mode == "sum":
        return total
    count = kept.sum(1).clamp(min=1) if kept is not None else bags.shape[1]
    return total / count


def _product_tree(x, dim=None, keepdim=False, dtype=None):
    """A product over ``dim`` (every element without one) as a tree of elementwise products of
    halves: log2(n) nodes, and autograd's gradient of products (exact with zeros too)."""
    if dtype not in (None, x.dtype):
        return NotImplemented
    if dim is None:
        return _product_tree(x.reshape(-1), 0)
    dim %= x.dim()
    while x.shape[dim] > 1:
        half, odd = divmod(x.shape[dim], 2)
        paired = x.narrow(dim, 0, half) * x.narrow(dim, half, half)
        x = torch.cat([paired, x.narrow(dim, 2 * half, 1)], dim) if odd else paired
    return x if keepdim else x.squeeze(dim)


def _running_products(x, dim, dtype=None):
    """``cumprod`` as log2(n) rounds of products with the running products ``shift`` positions
    back (ones before the start): a scan of elementwise products."""
    if dtype not in (None, x.dtype):
        return NotImplemented
    dim %= x.dim()
    shift = 1
    while shift < x.shape[dim]:
        ones = torch.ones_like(x.narrow(dim, 0, shift))
        x = x * torch.cat([ones, x.narrow(dim, 0, x.shape[dim] - shift)], dim)
        shift *= 2
    return x


def _wrapped_lists(x: torch.Tensor, key):
    """An indexing key whose lists of positions count from the start (``x[:, [-1, 0]]`` is
    ``x[:, [n − 1, 0]]``), so no integer arithmetic wraps them in the graph; a key with ``...`` or
    ``None`` is left as it is."""
    parts = (key,) if isinstance(key, list) else key
    if any(part is Ellipsis or part is None for part in parts):
        return key
    wrapped = tuple([p % x.shape[dim] for p in part] if isinstance(part, list) and part
                    and all(type(p) is int for p in part) else part for dim, part in enumerate(parts))
    return wrapped[0] if isinstance(key, list) else wrapped


#: the widest B whose column one chunk of 64 terms reads within the game's 16 leaves of 2 KiB
WIDE_COLUMNS = 128


# --------------------------------------------------------------------------------------------
# Sums over positions the dispute game can dissect

#: sums over more positions than one judge call reads (program_rules.CHUNK) are written with
#: ops whose long reductions the game dissects; shorter ones keep their fused kernel
JUDGED_POSITIONS = 64


def _classes(count: int, skipped: int, device) -> torch.Tensor:
    """0, 1, …, count − 1 with ``skipped`` (a padding row or an ignored target) replaced by −1,
    which no index equals: one_hot(i) == classes gives that class no terms."""
    classes = torch.arange(count, device=device)
    return torch.where(classes == skipped, -1, classes) if 0 <= skipped < count else classes


def _embedding_grad_by_matmul(grad, indices, num_weights, padding_idx, scale_grad_by_freq):
    """embedding's weight gradient as one_hot(indices)ᵀ @ grad: row v sums the gradients of the
    positions holding token v (a long matmul, dissected like any; a wide one reads rows of gradᵀ);
    the padding row stays zero."""
    if (indices.numel() <= JUDGED_POSITIONS and grad.shape[-1] <= WIDE_COLUMNS) or scale_grad_by_freq:
        return NotImplemented
    one_hot = (_classes(num_weights, padding_idx, grad.device).unsqueeze(1) == indices.reshape(1, -1)).to(grad.dtype)
    return one_hot @ grad.reshape(-1, grad.shape[-1])


def _nll_loss_by_sums(logp, target, weight, reduction, ignore_index):
    """The loss of many positions as sums: −Σ logp·one_hot(target) (over classes, then positions),
    divided by the count of targets not ignored (also a sum) for the mean."""
    if target.numel() <= JUDGED_POSITIONS or reduction == 0 or weight is not None:
        return NotImplemented
    one_hot = (target.unsqueeze(-1) == _classes(logp.shape[-1], ignore_index, logp.device)).to(logp.dtype)
    picked = (logp * one_hot).sum(-1)
    total = (target != ignore_index).to(logp.dtype).sum()
    loss = -picked.sum()
    return (loss / total if reduction == 1 else loss), total


def _mean_by_sum(x, dims, keepdim=False, dtype=None):
    """A mean of many terms as their sum divided by the count."""
    dims = list(range(x.dim())) if not dims else [d % x.dim() for d in dims]
    count = math.prod(x.shape[d] for d in dims)
    if count <= JUDGED_POSITIONS or dtype not in (None, x.dtype):
        return NotImplemented
    return x.sum(dims, keepdim) / count


def _moments_by_sums(x, dims, correction=0, keepdim=True):
    """(x − mean, mean, variance) over ``dims``, the moments as sums: mean = Σx / n kept,
    variance = Σ(x − mean)² / (n − correction)."""
    count = math.prod(x.shape[d] for d in dims)
    mean = x.sum(dims, True) / count
    centred = x - mean
    return centred, mean, (centred * centred).sum(dims, keepdim) / (count - correction)


def _normalised(x, dims, eps):
    """((x − mean)·rstd, mean, rstd) over ``dims`` kept, rstd = rsqrt(variance + eps)."""
    centred, mean, var = _moments_by_sums(x, dims)
    rstd = torch.rsqrt(var + eps)
    return centred * rstd, mean, rstd


def _layer_norm_by_sums(x, normalized_shape, weight, bias, eps):
    """LayerNorm over rows longer than one judge call reads, from its moments as sums."""
    dims = list(range(x.dim() - len(normalized_shape), x.dim()))
    if math.prod(normalized_shape) <= JUDGED_POSITIONS:
        return NotImplemented
    y, mean, rstd = _normalised(x, dims, eps)
    y = y * weight if weight is not None else y
    return (y + bias if bias is not None else y), mean, rstd


def _group_norm_by_sums(x, weight, bias, n, channels, hw, groups, eps):
    """GroupNorm over groups longer than one judge call reads, from its moments as sums."""
    if channels // groups * hw <= JUDGED_POSITIONS:
        return NotImplemented
    centred, mean, var = _moments_by_sums(x.reshape(n, groups, channels // groups, -1), [2, 3])
    rstd = torch.rsqrt(var + eps)
    # rstd · weight is one small (n, channels) factor, so the long tensor is multiplied once
    scale = rstd * weight.reshape(1, groups, -1, 1) if weight is not None else rstd
    y = centred * scale
    y = y + bias.reshape(1, groups, -1, 1) if bias is not None else y
    return y.reshape(x.shape), mean.reshape(n, groups), rstd.reshape(n, groups)


def _layer_norm_backward_by_sums(grad_out, x, normalized_shape, mean, rstd, weight, bias, output_mask):
    """LayerNorm's gradients as sums where one reduces over more terms than a judge call reads
    (or, the weight's and bias's, reads columns wider than WIDE_COLUMNS): those two over the rows,
    Σ grad·x̂ (x̂ = (x − mean)·rstd) and Σ grad; the input's over a long row,
    rstd·(g − Σg/d − x̂·Σg·x̂/d) with g = grad·weight. The others keep the fused kernel."""
    width = math.prod(normalized_shape)
    rows = x.numel() // width
    long_weight = output_mask[1] and (rows > JUDGED_POSITIONS or width > WIDE_COLUMNS)
    long_input = output_mask[0] and width > JUDGED_POSITIONS
    if not (long_weight or long_input):
        return NotImplemented
    fused = [output_mask[0] and not long_input, output_mask[1] and not long_weight, output_mask[2] and not long_weight]
    grad_in, grad_weight, grad_bias = aten.native_layer_norm_backward.default(
        grad_out, x, normalized_shape, mean, rstd, weight, bias, fused)
    normed = (x - mean) * rstd
    if long_weight:
        leading = list(range(x.dim() - len(normalized_shape)))
        grad_weight = (grad_out * normed).sum(leading)
        grad_bias = grad_out.sum(leading) if output_mask[2] else None
    if long_input:
        row = list(range(x.dim() - len(normalized_shape), x.dim()))
        g = grad_out * weight if weight is not None else grad_out
        grad_in = rstd * (g - g.sum(row, True) / width - normed * ((g * normed).sum(row, True) / width))
    return grad_in, grad_weight, grad_bias


POSITION_SUMS = {
    aten.embedding_dense_backward.default: _embedding_grad_by_matmul,
    aten.nll_loss_forward.default: _nll_loss_by_sums,
    aten.mean.dim: _mean_by_sum,
    aten.mean.default: lambda x, dtype=None: _mean_by_sum(x, None, dtype=dtype),
    aten.native_layer_norm.default: _layer_norm_by_sums,
    aten.native_group_norm.default: _group_norm_by_sums,
    aten.native_layer_norm_backward.default: _layer_norm_backward_by_sums,
}


# --------------------------------------------------------------------------------------------
# Kernels the op set has no node for, written with ops it has


def _tanh_gelu(decomposition: Callable, arity: int) -> Callable:
    """GELU's tanh approximation (and its backward) by torch's decomposition; the exact GELU keeps
    its own node."""
    def decompose(*args, **kwargs):
        approximate = kwargs.get("approximate", args[arity] if len(args) > arity else "none")
        return NotImplemented if approximate == "none" else decomposition(*args, **kwargs)
    return decompose


def pair(value, default):
    """A 2-d pooling argument as [h, w]: an int or a one-element list for both, ``default`` if empty."""
    if isinstance(value, int):
        return [value, value]
    return list(value) * (2 if len(value) == 1 else 1) if value else default


def _pool_as_conv(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """A 2-d average pool as a depthwise convolution: (the window of ones, the convolution's
    arguments, the divisor: one count, or a constant map of counts where padding is not counted)."""
    kernel = pair(kernel_size, None)
    stride, padding = pair(stride, kernel), pair(padding, [0, 0])
    size = x.shape[-2:]
    if ceil_mode and any((s + 2 * p - k) % st for s, p, k, st in zip(size, padding, kernel, stride)):
        raise GraphError("avg_pool2d with ceil_mode adding a partial window is not supported "
                         "(pad the input or pick a size the stride divides)")
    channels = x.shape[-3]
    ones = torch.ones(channels, 1, *kernel, dtype=x.dtype, device=x.device)
    conv = [stride, padding, [1, 1], False, [0, 0], channels]
    if divisor_override:
        divisor = divisor_override
    elif count_include_pad or not any(padding):
        divisor = kernel[0] * kernel[1]
    else:  # the in-bounds count of each window: a convolution of constants, folded at export
        plane = torch.ones(1, 1, *size, dtype=x.dtype, device=x.device)
        divisor = aten.convolution.default(plane, ones[:1], None, *conv[:-1], 1)[0]
    return ones, conv, divisor


def _batched(x):
    return (x, False) if x.dim() == 4 else (x.unsqueeze(0), True)


def _avg_pool_by_conv(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                      divisor_override=None):
    """avg_pool2d: the windows' sums (a depthwise convolution with a weight of ones) over their counts."""
    ones, conv, divisor = _pool_as_conv(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override)
    batched, unbatched = _batched(x)
    sums = aten.convolution.default(batched, ones, None, *conv)
    return (sums.squeeze(0) if unbatched else sums) / divisor


def _avg_pool_backward_by_conv(grad, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                               divisor_override):
    """avg_pool2d's input gradient: the convolution's input gradient of grad over the counts."""
    ones, conv, divisor = _pool_as_conv(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override)
    (batched, unbatched), (g, _) = _batched(x), _batched(grad / divisor)
    out = aten.convolution_backward.default(g, batched, ones, None, *conv, [True, False, False])[0]
    return out.squeeze(0) if unbatched else out


def _adaptive_window(x, output_size, name: str = "adaptive_avg_pool2d") -> list[int]:
    """The window of an adaptive pool whose output size divides the input's (then it is the pool
    with that window as kernel and stride)."""
    size = x.shape[-2:]
    output = [output_size, output_size] if isinstance(output_size, int) else list(output_size)
    if any(o is None or s % o for s, o in zip(size, output)):
        raise GraphError(f"{name} from {list(size)} to {output} is not supported "
                         "(an output size that divides the input's is)")
    return [s // o for s, o in zip(size, output)]


def _adaptive_max_pool_by_max_pool(x, output_size):
    window = _adaptive_window(x, output_size, "adaptive_max_pool2d")
    return aten.max_pool2d_with_indices.default(x, window, window)


def _adaptive_max_pool_backward_by_max_pool(grad, x, indices):
    window = _adaptive_window(x, grad.shape[-2:], "adaptive_max_pool2d")
    return aten.max_pool2d_with_indices_backward.default(grad, x, window, window, [0, 0], [1, 1], False, indices)


# --------------------------------------------------------------------------------------------
# Index maps: flips, rolls, edge padding and indexing as lookups (or one-hot products)


def _index_tensor(index, device) -> torch.Tensor:
    """``index`` (positions or a tensor of them) as a 1-D int64 tensor."""
    if isinstance(index, torch.Tensor):
        return index.reshape(-1)
    return torch.tensor(list(index), dtype=torch.int64, device=device)


def _gather(x: torch.Tensor, dim: int, index) -> torch.Tensor:
    """``x``'s slices along ``dim`` at ``index`` (constant positions or an int64 tensor): an
    embedding lookup with those slices as its rows, exact copies the judge checks element by
    element."""
    if not isinstance(index, torch.Tensor) and list(index) == list(range(x.shape[dim])):
        return x
    index = _index_tensor(index, x.device)
    rows = x.movedim(dim, 0)
    picked = aten.embedding.default(rows.reshape(rows.shape[0], -1), index)
    return picked.reshape(index.shape[0], *rows.shape[1:]).movedim(0, dim)


def _gathered_sums(grad: torch.Tensor, dim: int, index, size: int) -> torch.Tensor:
    """The gradient of :func:`_gather`: slice i along ``dim`` sums the slices of ``grad`` gathered
    from it (embedding's weight gradient)."""
    if not isinstance(index, torch.Tensor) and list(index) == list(range(size)):
        return grad
    rows = grad.movedim(dim, 0)
    summed = aten.embedding_dense_backward.default(rows.reshape(rows.shape[0], -1), _index_tensor(index, grad.device),
                                                   size, -1, False)
    return summed.reshape(size, *rows.shape[1:]).movedim(0, dim)


def _view_backward(view: Callable) -> Callable:
    """The gradient of a view no node expresses backward (``diagonal``, ``unfold``): each input
    element sums the gradient of the output elements that read it, the positions those of the view
    of ``arange`` (a constant)."""
    def backward(grad, input_sizes, *args):
        positions = view(torch.arange(math.prod(input_sizes), device=grad.device).reshape(input_sizes), *args)
        flat = _gathered_sums(grad.reshape(-1, 1), 0, positions.reshape(-1), math.prod(input_sizes))
        return flat.reshape(input_sizes)
    return backward


def _single_index(indices) -> tuple[int, torch.Tensor] | None:
    """The dim and the integer index of ``x[..., index, ...]`` with one advanced index (a bool mask
    becomes its positions, which only a constant mask has at export; negative positions in a list
    were wrapped before autograd, ``BeforeAutograd``), or None."""
    given = [(dim, index) for dim, index in enumerate(indices) if index is not None]
    if len(given) != 1:
        return None
    dim, index = given[0]
    if index.dtype == torch.bool:
        if index.dim() != 1:
            return None
        index = index.nonzero().reshape(-1)
    return dim, index


def _one_hot(index: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """``index``'s one-hot rows of ``size`` (a new last dim): an integer comparison with a constant
    ``arange``, so data indices need no integer arithmetic."""
    return (index.unsqueeze(-1) == torch.arange(size, device=index.device)).to(dtype)


def _pair(x, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """For ``x[rows, cols, ...]`` (two integer indices on the first two dims): the one-hot rows of
    each, (M, N0) and (M, N1) floats, and the shape the indices broadcast to; None for any other
    key."""
    if len(indices) != 2 or any(i is None or i.dtype == torch.bool for i in indices) or x.dim() < 2:
        return None
    rows, cols = torch.broadcast_tensors(*indices)
    return (_one_hot(rows.reshape(-1), x.shape[0], x.dtype), _one_hot(cols.reshape(-1), x.shape[1], x.dtype),
            tuple(rows.shape))


def _index_pair_by_products(x, indices):
    """``x[rows, cols]``: (one-hot rows · x) picked by the one-hot columns, sums whose one non-zero
    term is the element (no integer arithmetic for a flat position)."""
    pair = _pair(x, indices)
    if pair is None:
        return NotImplemented
    rows, cols, shape = pair
    picked = torch.matmul(rows, x.reshape(x.shape[0], -1)).reshape(rows.shape[0], x.shape[1], -1)
    return (picked * cols.unsqueeze(-1)).sum(1).reshape(*shape, *x.shape[2:])


def _index_by_gather(x, indices):
    """``x[..., index, ...]`` with one advanced index: the lookup of its positions along that dim,
    the index's shape in its place; ``x[rows, cols]`` by :func:`_index_pair_by_products`."""
    single = _single_index(indices)
    if single is None:
        return _index_pair_by_products(x, indices)
    dim, index = single
    picked = _gather(x, dim, index)
    return picked.reshape(*x.shape[:dim], *index.shape, *x.shape[dim + 1:])


def _index_put_by_sums(x, indices, values, accumulate=False):
    """``x[..., index, ...] += values`` (the gradient of an index): the lookups' sums; a put that
    overwrites keeps the kernel."""
    if not accumulate:
        return NotImplemented
    single = _single_index(indices)
    if single is None:  # x[rows, cols] += values: the one-hot rows' transpose times the placed values
        pair = _pair(x, indices)
        if pair is None:
            return NotImplemented
        rows, cols, shape = pair
        placed = cols.unsqueeze(-1) * values.expand(*shape, *x.shape[2:]).reshape(rows.shape[0], 1, -1)
        return x + torch.matmul(rows.t(), placed.reshape(rows.shape[0], -1)).reshape(x.shape)
    dim, index = single
    values = values.expand(*x.shape[:dim], *index.shape, *x.shape[dim + 1:])
    values = values.reshape(*x.shape[:dim], index.numel(), *x.shape[dim + 1:])
    return x + _gathered_sums(values, dim, index, x.shape[dim])


def _one_hot_rows(x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor | None:
    """For ``gather(x, dim, index)``, ``dim`` moved last: (…, K, N) floats, row k one at index k;
    None unless ``index`` spans ``x`` in every other dim."""
    moved, picks = x.movedim(dim, -1), index.movedim(dim, -1)
    if picks.shape[:-1] != moved.shape[:-1]:
        return None
    return _one_hot(picks, moved.shape[-1], x.dtype)


def _gather_by_products(x, dim, index, sparse_grad=False):
    """``torch.gather`` as the product of the one-hot rows of ``index`` with ``x``'s rows: each
    output a sum with one term the picked element (exact) and the others zeros."""
    rows = _one_hot_rows(x, dim, index)
    if rows is None:
        return NotImplemented
    return torch.matmul(rows, x.movedim(dim, -1).unsqueeze(-1)).squeeze(-1).movedim(-1, dim)


def _scatter_add_by_products(x, dim, index, src):
    """``scatter_add`` (gather's gradient): ``x`` plus the transposed one-hot rows times ``src``."""
    rows = _one_hot_rows(x, dim, index)
    if rows is None or src.shape != index.shape:
        return NotImplemented
    summed = torch.matmul(rows.transpose(-1, -2), src.movedim(dim, -1).unsqueeze(-1)).squeeze(-1)
    return x + summed.movedim(-1, dim)


def _triangle(lower: bool) -> Callable:
    """tril/triu as a ``where`` with a constant mask."""
    def keep(x, diagonal=0):
        above = (torch.arange(x.shape[-1], device=x.device).unsqueeze(0)
                 - torch.arange(x.shape[-2], device=x.device).unsqueeze(1))  # column − row
        return torch.where(above <= diagonal if lower else above >= diagonal, x, x.new_zeros(()))  # x's dtype
    return keep


def _flip_by_gathers(x, dims):
    for dim in dims:
        x = _gather(x, dim, range(x.shape[dim] - 1, -1, -1))
    return x


def _roll_by_gathers(x, shifts, dims=()):
    if not dims:
        return _roll_by_gathers(x.reshape(-1), shifts, [0]).reshape(x.shape)
    for shift, dim in zip(shifts, dims):
        size = x.shape[dim]
        x = _gather(x, dim, [(j - shift) % size for j in range(size)])
    return x


#: which input position a padded position j of a dim of ``size`` copies
EDGES = {
    "reflection": lambda j, size: -j if j < 0 else 2 * (size - 1) - j if j >= size else j,  # mirrored
    "replication": lambda j, size: min(max(j, 0), size - 1),  # the edge repeated
    "circular": lambda j, size: j % size,  # wrapped around
}


def _edge_pad(edge: str) -> tuple[Callable, Callable]:
    """{reflection,replication}_pad{1,2,3}d and circular padding as gathers along each padded dim (the
    last ``len(padding) // 2``, the last dim's pads first; a negative pad crops), and their
    backward as the gathers' sums."""
    def index_maps(x, padding):
        for i in range(len(padding) // 2):
            dim, size = x.dim() - 1 - i, x.shape[x.dim() - 1 - i]
            yield dim, [EDGES[edge](j, size) for j in range(-padding[2 * i], size + padding[2 * i + 1])]

    def pad(x, padding):
        for dim, index in index_maps(x, padding):
            x = _gather(x, dim, index)
        return x

    def backward(grad, x, padding):
        for dim, index in index_maps(x, padding):
            grad = _gathered_sums(grad, dim, index, x.shape[dim])
        return grad
    return pad, backward


def _cumsum_by_matmul(x, dim, dtype=None):
    """A running sum along ``dim`` as the product with a constant upper-triangular matrix of ones (a
    sum the judge bounds; a long one the game dissects); integer running sums keep the kernel."""
    if not x.is_floating_point() or dtype not in (None, x.dtype):
        return NotImplemented
    size = x.shape[dim]
    ones = torch.triu(torch.ones(size, size, dtype=x.dtype, device=x.device))
    return (x.movedim(dim, -1) @ ones).movedim(-1, dim)


def _index_maps() -> dict:
    table = {aten.flip.default: _flip_by_gathers, aten.roll.default: _roll_by_gathers,
             aten.cumsum.default: _cumsum_by_matmul, aten.im2col.default: _unfold_by_slices,
             aten.col2im.default: _fold_by_slices, aten.index_select.default: _gather,
             aten.index_add.default: lambda x, dim, index, source, alpha=1:
                 x + _gathered_sums(source * alpha if alpha != 1 else source, dim, index, x.shape[dim]),
             aten.index.Tensor: _index_by_gather, aten.index_put.default: _index_put_by_sums,
             aten.gather.default: _gather_by_products, aten.scatter_add.default: _scatter_add_by_products,
             aten.tril.default: _triangle(True), aten.triu.default: _triangle(False),
             aten.diagonal_backward.default: _view_backward(torch.diagonal),
             aten.unfold_backward.default: _view_backward(torch.Tensor.unfold)}
    for cubic, name in ((False, "upsample_bilinear2d"), (True, "upsample_bicubic2d")):
        resize, backward = _resize_by_matmuls(cubic)
        table[getattr(aten, name).default], table[getattr(aten, f"{name}_backward").default] = resize, backward
    for exact, name in ((False, "upsample_nearest2d"), (True, "_upsample_nearest_exact2d")):
        upsample, backward = _upsample_nearest(exact)
        table[getattr(aten, name).default], table[getattr(aten, f"{name}_backward").default] = upsample, backward
    for edge in ("reflection", "replication"):
        pad, backward = _edge_pad(edge)
        for n in (1, 2, 3):
            table[getattr(aten, f"{edge}_pad{n}d").default] = pad
            table[getattr(aten, f"{edge}_pad{n}d_backward").default] = backward
    return table


def _blocks(size, kernel, dilation, padding, stride) -> list[tuple[int, int, int]]:
    """Per spatial dim of an unfold: (kernel taps, dilation, output positions)."""
    return [(k, d, (n + 2 * p - d * (k - 1) - 1) // s + 1)
            for n, k, d, p, s in zip(size, kernel, dilation, padding, stride)]


def _tiles(kernel, dilation, padding, stride, size) -> bool:
    """Whether an unfold's blocks tile the plane (stride = kernel, no dilation or padding)."""
    return (list(kernel) == list(stride) and all(d == 1 for d in dilation) and not any(padding)
            and all(n % k == 0 for n, k in zip(size, kernel)))


def _unfold_by_slices(x, kernel_size, dilation, padding, stride):
    """im2col (``F.unfold``): each block's pixels, channel-major, as columns; blocks that tile the
    plane by a view, others as the stack of one strided slice of the zero-padded input per tap."""
    if x.dim() == 3:
        return _unfold_by_slices(x.unsqueeze(0), kernel_size, dilation, padding, stride).squeeze(0)
    (n, c), ((kh, dh, oh), (kw, dw, ow)) = x.shape[:2], _blocks(x.shape[2:], kernel_size, dilation, padding, stride)
    if _tiles(kernel_size, dilation, padding, stride, x.shape[2:]):
        return x.reshape(n, c, oh, kh, ow, kw).permute(0, 1, 3, 5, 2, 4).reshape(n, c * kh * kw, oh * ow)
    (ph, pw), (sh, sw) = padding, stride
    padded = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    taps = [padded[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
            for i in range(kh) for j in range(kw)]
    return torch.stack(taps, 2).reshape(n, c * kh * kw, oh * ow)


def _fold_by_slices(cols, output_size, kernel_size, dilation, padding, stride):
    """col2im (``F.fold``, unfold's gradient): each tap's column placed at its strided pixels of
    the zero-padded plane (``slice_backward``), summed over taps, the padding cropped."""
    if cols.dim() == 2:
        return _fold_by_slices(cols.unsqueeze(0), output_size, kernel_size, dilation, padding, stride).squeeze(0)
    (kh, dh, oh), (kw, dw, ow) = _blocks(output_size, kernel_size, dilation, padding, stride)
    n, c = cols.shape[0], cols.shape[1] // (kh * kw)
    if _tiles(kernel_size, dilation, padding, stride, output_size):
        return cols.reshape(n, c, kh, kw, oh, ow).permute(0, 1, 4, 2, 5, 3).reshape(n, c, *output_size)
    (ph, pw), (sh, sw) = padding, stride
    plane = [n, c, output_size[0] + 2 * ph, output_size[1] + 2 * pw]
    taps = cols.reshape(n, c, kh, kw, oh, ow)
    total = None
    for i in range(kh):
        for j in range(kw):
            rows = aten.slice_backward.default(taps[:, :, i, j], [n, c, plane[2], ow], 2, i * dh,
                                               i * dh + sh * (oh - 1) + 1, sh)
            placed = aten.slice_backward.default(rows, plane, 3, j * dw, j * dw + sw * (ow - 1) + 1, sw)
            total = placed if total is None else total + placed
    return total[:, :, ph:ph + output_size[0], pw:pw + output_size[1]]


def _upsample_factors(input_size, output_size, scales) -> list[int] | None:
    """The whole factors of a nearest upsample (each output pixel copies the input pixel
    ``i // factor``): the output size a multiple of the input's, any scale given equal to it."""
    factors = [o // i if o % i == 0 else 0 for i, o in zip(input_size[-2:], output_size)]
    if not all(factors) or any(s is not None and s != f for s, f in zip(scales, factors)):
        return None
    return factors


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _nearest_index(size: int, out: int, scale: float | None, exact: bool) -> list[int]:
    """Which input pixel each output pixel of a nearest upsample copies, as PyTorch's kernel finds
    it in float32: ⌊i·s⌋ (nearest-exact: ⌊(i + ½)·s⌋), s = 1/scale or size/out, at most size − 1."""
    step = _float32(1 / scale) if scale else _float32(size / out)
    return [min(math.floor(_float32(_float32(i + 0.5 if exact else i) * step)), size - 1) for i in range(out)]


def _nearest_indices(input_size, output_size, scales, exact: bool):
    return [(dim, _nearest_index(input_size[dim], out, scale, exact))
            for dim, out, scale in zip((len(input_size) - 2, len(input_size) - 1), output_size, scales)]


def _upsample_nearest(exact: bool) -> tuple[Callable, Callable]:
    """Nearest upsampling (and nearest-exact): by whole factors each pixel repeated over its block (an
    expanded view, read out; its gradient the sum over each block), else gathers of the pixels each
    output row and column copies (their gradient the gathers' sums)."""
    def upsample(x, output_size, scales_h=None, scales_w=None):
        factors = None if exact else _upsample_factors(x.shape, output_size, (scales_h, scales_w))
        if factors:
            (fh, fw), (n, c, h, w) = factors, x.shape
            return x.reshape(n, c, h, 1, w, 1).expand(n, c, h, fh, w, fw).reshape(n, c, h * fh, w * fw)
        for dim, index in _nearest_indices(x.shape, output_size, (scales_h, scales_w), exact):
            x = _gather(x, dim, index)
        return x

    def backward(grad, output_size, input_size, scales_h=None, scales_w=None):
        factors = None if exact else _upsample_factors(input_size, output_size, (scales_h, scales_w))
        if factors:
            (fh, fw), (n, c, h, w) = factors, input_size
            return grad.reshape(n, c, h, fh, w, fw).sum([3, 5])
        for dim, index in _nearest_indices(input_size, output_size, (scales_h, scales_w), exact):
            grad = _gathered_sums(grad, dim, index, input_size[dim])
        return grad
    return upsample, backward


#: PyTorch's cubic convolution kernel's A
CUBIC_A = -0.75


def _cubic_weights(t: float) -> list[float]:
    """The four taps' weights at fraction ``t`` past the second (PyTorch's cubic convolution)."""
    def near(x: float) -> float:  # |x| <= 1
        return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1

    def far(x: float) -> float:  # 1 < |x| < 2
        return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _interpolation_matrix(size: int, out: int, align_corners: bool, scale: float | None, cubic: bool) -> torch.Tensor:
    """The (out, size) matrix of 1-d linear (or cubic) interpolation as PyTorch samples it: output i
    reads source ``src = i·(size − 1)/(out − 1)`` (align_corners) or ``(i + ½)/scale − ½`` (scale
    the given factor, else out/size; at least 0 for linear), between floor(src) and the next
    pixel (cubic: the four pixels around them, each index clamped to the edge)."""
    if align_corners:
        src = [i * (size - 1) / (out - 1) if out > 1 else 0.0 for i in range(out)]
    else:
        step = 1 / scale if scale else size / out
        src = [(i + 0.5) * step - 0.5 if cubic else max((i + 0.5) * step - 0.5, 0.0) for i in range(out)]
    matrix = torch.zeros(out, size, dtype=torch.float64)
    for i, position in enumerate(src):
        low = math.floor(position)
        if cubic:
            for tap, weight in enumerate(_cubic_weights(position - low)):
                matrix[i, min(max(low - 1 + tap, 0), size - 1)] += weight
        else:
            low = min(low, size - 1)
            matrix[i, low] += 1 - (position - low)
            matrix[i, min(low + 1, size - 1)] += position - low
    return matrix.float()


def _resize_by_matmuls(cubic: bool) -> tuple[Callable, Callable]:
    """Bilinear (bicubic) resizing as two products with constant interpolation matrices,
    A_h · x · A_wᵀ, and its gradient A_hᵀ · grad · A_w."""
    def matrices(input_size, output_size, align_corners, scales_h, scales_w):
        return (_interpolation_matrix(input_size[-2], output_size[0], align_corners, scales_h, cubic),
                _interpolation_matrix(input_size[-1], output_size[1], align_corners, scales_w, cubic))

    def resize(x, output_size, align_corners, scales_h=None, scales_w=None):
        rows, columns = matrices(x.shape, output_size, align_corners, scales_h, scales_w)
        return torch.matmul(torch.matmul(rows, x), columns.t())

    def backward(grad, output_size, input_size, align_corners, scales_h=None, scales_w=None):
        rows, columns = matrices(input_size, output_size, align_corners, scales_h, scales_w)
        return torch.matmul(torch.matmul(rows.t(), grad), columns)
    return resize, backward


def _adaptive_avg_pool_by_conv(x, output_size):
    window = _adaptive_window(x, output_size)
    return _avg_pool_by_conv(x, window, window)


def _adaptive_avg_pool_backward_by_conv(grad, x):
    window = _adaptive_window(x, grad.shape[-2:])
    return _avg_pool_backward_by_conv(grad, x, window, window, [0, 0], False, True, None)


def _batch_norm_by_sums(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """Batch statistics without running ones (what InstanceNorm calls, over a batch of one whose
    channels are the samples' channels; BatchNorm layers are :class:`BatchNormStep` s): the moments
    as sums."""
    if running_mean is not None or running_var is not None or not training:
        return NotImplemented
    shape = [1, -1] + [1] * (x.dim() - 2)
    y, mean, rstd = _normalised(x, [0, *range(2, x.dim())], eps)
    y = y * weight.reshape(shape) if weight is not None else y
    return (y + bias.reshape(shape) if bias is not None else y), mean.reshape(-1), rstd.reshape(-1)


def _moments(x, dim=None, *, correction=None, keepdim=False):
    """(variance, mean) over ``dim`` as sums: Σ(x − mean)² / (n − correction), Σx / n."""
    dims = list(range(x.dim())) if not dim else [d % x.dim() for d in dim]
    _, mean, var = _moments_by_sums(x, dims, 1 if correction is None else correction, keepdim)
    return var, mean if keepdim else mean.squeeze(dims)


#: fused kernels the op set has no node for, written with ops it has (docs/programs.md §2):
#: activations, norms and shuffles by torch's own decompositions (their backward kernels too:
#: autograd records those before the table applies; log1p and expm1 in them are lowered as
#: log(1 + x) and exp(x) − 1 by ``_HANDLERS``), average pools as convolutions, adaptive max pools
#: as max pools, nearest upsampling by whole factors as views and its gradient as sums, bilinear
#: and bicubic upsampling as products with constant matrices, wide convolutions' input gradients
#: by the flipped weight; flips, rolls, edge padding and other nearest upsampling as lookups of
#: constant indices (their gradients as the lookups' sums); running sums as matmuls; unfold and
#: fold as strided slices (views where the blocks tile the plane)
DECOMPOSED = {
    **get_decompositions([
        aten.softplus, aten.softplus_backward, aten.elu, aten.elu_backward, aten.celu, aten.hardswish,
        aten.hardswish_backward, aten.hardsigmoid, aten.hardsigmoid_backward, aten.hardtanh,
        aten.hardtanh_backward, aten.mish, aten.mish_backward, aten.log_sigmoid_forward,
        aten.log_sigmoid_backward, aten._prelu_kernel, aten._prelu_kernel_backward, aten.repeat,
        aten.native_batch_norm_backward, aten.linalg_vector_norm, aten.logsumexp, aten.pixel_shuffle,
        aten.pixel_unshuffle, aten.glu, aten.glu_backward, aten.threshold, aten.hardshrink, aten.softshrink,
        aten.rot90, aten.channel_shuffle, aten.mse_loss, aten.mse_loss_backward, aten.smooth_l1_loss,
        aten.smooth_l1_loss_backward,
    ]),
    aten.hardshrink_backward.default: lambda g, x, lambd: torch.where((x >= -lambd) & (x <= lambd), 0.0, g),
    aten.softshrink_backward.default: lambda g, x, lambd: torch.where((x >= -lambd) & (x <= lambd), 0.0, g),
    aten.exp2.default: lambda x: torch.exp(x * math.log(2)),
    aten.log2.default: lambda x: torch.log(x) * (1 / math.log(2)),
    aten.log10.default: lambda x: torch.log(x) * (1 / math.log(10)),
    aten.erfc.default: lambda x: 1 - torch.erf(x),
    aten.amin.default: lambda x, dim=(), keepdim=False: -torch.amax(-x, dim, keepdim),
    aten.var.correction: lambda *a, **k: _moments(*a, **k)[0],
    aten.std.correction: lambda *a, **k: torch.sqrt(_moments(*a, **k)[0]),
    aten.var_mean.correction: _moments,
    aten.std_mean.correction: lambda *a, **k: (lambda var, mean: (torch.sqrt(var), mean))(*_moments(*a, **k)),
    aten.native_batch_norm.default: _batch_norm_by_sums,
    aten.gelu.default: _tanh_gelu(decomposition_table[aten.gelu.default], 1),
    aten.gelu_backward.default: _tanh_gelu(decomposition_table[aten.gelu_backward.default], 2),
    aten.avg_pool2d.default: _avg_pool_by_conv,
    aten.avg_pool2d_backward.default: _avg_pool_backward_by_conv,
    aten._adaptive_avg_pool2d.default: _adaptive_avg_pool_by_conv,
    aten._adaptive_avg_pool2d_backward.default: _adaptive_avg_pool_backward_by_conv,
    aten.adaptive_max_pool2d.default: _adaptive_max_pool_by_max_pool,
    aten.adaptive_max_pool2d_backward.default: _adaptive_max_pool_backward_by_max_pool,
    aten.convolution_backward.default: _convolution_backward_by_flipped_weight,
    **_index_maps(),
}
