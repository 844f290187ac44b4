"""Compression of what crosses the links of a multi-machine training task.

Two families, both deterministic functions of their inputs (no random rounding, stable sorts):

* **AQ-SGD** between pipeline stages. For every training sample ``i`` the sender and the receiver
  of a stage boundary keep the same cache ``m_i``: the last activation of ``i`` *as the receiver
  reconstructed it*. When ``i`` comes back, only ``delta = a_i - m_i`` is sent, quantised to
  ``b`` bits with max-abs scaling per sample; both sides then set ``m_i <- m_i + Q(delta)``. As
  training converges the activation of a sample stops changing, ``delta`` shrinks and so does the
  error. A sample not cached yet, and every sample during the warm-up epochs, is sent in float32
  (and cached exactly). Backward gradients do not converge per sample, so they are quantised
  directly (:class:`DirectCodec`), or sent raw.
* **DiLoCo** between data-parallel replicas: after ``H`` inner steps each replica's pseudo-
  gradient ``theta_global - theta_local`` is averaged over replicas and applied by an outer
  Nesterov step (:class:`OuterNesterov`); the pseudo-gradients can be quantised or top-k
  sparsified with error feedback (:class:`PseudoGradCodec`).

Every message is a flat ``uint8`` tensor; its length is the exact number of bytes on the wire.
The sample ids, shapes and epochs that fix a message's layout are known to both ends (they follow
from the committed batch order), so they are never sent.

Quantisation to ``b`` bits (2..8) of a row ``x`` with ``s = max|x|`` and ``L = 2^(b-1) - 1``:
``code = round(x / s * L) + L`` in ``[0, 2L]``, packed little-endian ``b`` bits per value;
``Q(x) = (code - L) * (s / L)``; ``|x - Q(x)| <= s / (2L)``. A row is sent as its float32 scale
(4 bytes) followed by the codes of all rows packed together: ``4 * rows + ceil(n * b / 8)`` bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

MIN_BITS, MAX_BITS = 2, 8


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")


# ── bit packing ──────────────────────────────────────────────────────
def packed_size(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """``codes`` (integers in ``[0, 2^bits)``) packed ``bits`` each, little-endian, into uint8."""
    flat = codes.reshape(-1).to(torch.int64)
    if 8 % bits == 0:  # 2, 4, 8 bits: whole values per byte
        per_byte = 8 // bits
        pad = (-flat.numel()) % per_byte
        if pad:
            flat = torch.cat([flat, flat.new_zeros(pad)])
        shifts = bits * torch.arange(per_byte, dtype=torch.int64)
        return (flat.reshape(-1, per_byte) << shifts).sum(1).to(torch.uint8)
    shifts = torch.arange(bits, dtype=torch.int64)
    stream = ((flat.unsqueeze(1) >> shifts) & 1).reshape(-1)
    pad = (-stream.numel()) % 8
    if pad:
        stream = torch.cat([stream, stream.new_zeros(pad)])
    weights = 1 << torch.arange(8, dtype=torch.int64)
    return (stream.reshape(-1, 8) * weights).sum(1).to(torch.uint8)


def unpack_bits(data: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: ``count`` int64 codes."""
    if 8 % bits == 0:
        per_byte = 8 // bits
        shifts = bits * torch.arange(per_byte, dtype=torch.int64)
        return ((data.to(torch.int64).unsqueeze(1) >> shifts) & ((1 << bits) - 1)).reshape(-1)[:count]
    stream = ((data.to(torch.int64).unsqueeze(1) >> torch.arange(8, dtype=torch.int64)) & 1).reshape(-1)
    stream = stream[: count * bits].reshape(count, bits)
    return (stream << torch.arange(bits, dtype=torch.int64)).sum(1)


# ── row quantisation ─────────────────────────────────────────────────
def quantize_rows(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes in ``[0, 2L]`` (int64, shape of ``x``) and one float32 max-abs scale per row."""
    _check_bits(bits)
    levels = (1 << (bits - 1)) - 1
    flat = x.detach().reshape(x.shape[0], -1).float()
    scales = flat.abs().amax(1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    q = torch.round(flat / safe.unsqueeze(1) * levels).clamp_(-levels, levels)
    return (q.to(torch.int64) + levels).reshape(x.shape), scales


def dequantize_rows(codes: torch.Tensor, scales: torch.Tensor, bits: int) -> torch.Tensor:
    levels = (1 << (bits - 1)) - 1
    flat = codes.reshape(codes.shape[0], -1)
    step = (scales / levels).unsqueeze(1)
    return ((flat - levels).float() * step).reshape(codes.shape)


def quantized_size(rows: int, per_row: int, bits: int) -> int:
    return 4 * rows + packed_size(rows * per_row, bits)


def encode_rows(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(message, Q(x)): the scales as float32 bytes, then the packed codes."""
    codes, scales = quantize_rows(x, bits)
    message = torch.cat([scales.contiguous().view(torch.uint8), pack_bits(codes, bits)])
    return message, dequantize_rows(codes, scales, bits)


def decode_rows(message: torch.Tensor, bits: int, shape: Sequence[int]) -> torch.Tensor:
    rows, per_row = shape[0], math.prod(shape[1:])
    if message.numel() != quantized_size(rows, per_row, bits):
        raise ValueError(f"message of {message.numel()} bytes, expected {quantized_size(rows, per_row, bits)}")
    scales = message[: 4 * rows].clone().view(torch.float32)
    codes = unpack_bits(message[4 * rows:], bits, rows * per_row).reshape(tuple(shape))
    return dequantize_rows(codes, scales, bits)


@dataclass(frozen=True)
class ProgramMessageCodec:
    """How a step program's quantised message of ``rows`` × ``per_row`` codes crosses a wire: its
    float32 bytes (what the sender commits) as :func:`pack_program_message` packs them."""

    rows: int
    per_row: int
    bits: int

    @property
    def wire_size(self) -> int:
        return quantized_size(self.rows, self.per_row, self.bits)

    def encode(self, payload: torch.Tensor) -> torch.Tensor:
        return pack_program_message(payload.view(torch.float32), self.rows, self.bits)

    def decode(self, wire: torch.Tensor) -> torch.Tensor:
        return unpack_program_message(wire, self.rows, self.per_row, self.bits).view(torch.uint8)


def pack_program_message(message: torch.Tensor, rows: int, bits: int) -> torch.Tensor:
    """The wire bytes of a step program's quantised message (``stage_program.quantize``: integer
    codes in ``[-L, L]`` as float32, then ``rows`` float32 scales), laid out as :func:`encode_rows`
    lays its own: the scales, then the codes plus ``L`` packed ``bits`` each. Lossless."""
    _check_bits(bits)
    levels = (1 << (bits - 1)) - 1
    codes, scales = message[:-rows], message[-rows:]
    if not bool(((codes == codes.round()) & (codes.abs() <= levels)).all()):
        raise ValueError(f"a quantised message holds codes that are not integers in [-{levels}, {levels}]")
    return torch.cat([scales.contiguous().view(torch.uint8), pack_bits(codes.to(torch.int64) + levels, bits)])


def unpack_program_message(payload: torch.Tensor, rows: int, per_row: int, bits: int) -> torch.Tensor:
    """Inverse of :func:`pack_program_message`: the float32 message its sender's program computed."""
    levels = (1 << (bits - 1)) - 1
    if payload.numel() != quantized_size(rows, per_row, bits):
        raise ValueError(f"message of {payload.numel()} bytes, expected {quantized_size(rows, per_row, bits)}")
    codes = unpack_bits(payload[4 * rows:], bits, rows * per_row) - levels
    return torch.cat([codes.float(), payload[: 4 * rows].clone().view(torch.float32)])


def raw_bytes(x: torch.Tensor) -> torch.Tensor:
    return x.detach().float().contiguous().reshape(-1).view(torch.uint8)


def from_raw(message: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    return message.clone().view(torch.float32).reshape(tuple(shape))


# ── codecs of a stage boundary ───────────────────────────────────────
class RawCodec:
    """float32 as is (the uncompressed baseline)."""

    def message_size(self, ids: torch.Tensor, shape: Sequence[int], epoch: int) -> int:
        return 4 * math.prod(shape)

    def encode(self, x: torch.Tensor, ids: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return raw_bytes(x), x.detach()

    def decode(self, message: torch.Tensor, ids: torch.Tensor, shape: Sequence[int], epoch: int) -> torch.Tensor:
        return from_raw(message, shape)


class DirectCodec:
    """Max-abs quantisation of each sample's row, no cache (AQ-SGD's backward gradients)."""

    def __init__(self, bits: int) -> None:
        _check_bits(bits)
        self.bits = bits

    def message_size(self, ids: torch.Tensor, shape: Sequence[int], epoch: int) -> int:
        return quantized_size(shape[0], math.prod(shape[1:]), self.bits)

    def encode(self, x: torch.Tensor, ids: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_rows(x, self.bits)

    def decode(self, message: torch.Tensor, ids: torch.Tensor, shape: Sequence[int], epoch: int) -> torch.Tensor:
        return decode_rows(message, self.bits, shape)


class DeltaCodec:
    """AQ-SGD: per-sample caches, quantised change since the sample was last sent.

    One instance on each side of a link; both see the same ``(ids, shape, epoch)`` sequence, so
    their caches stay bitwise identical (:meth:`encode` stores exactly what :meth:`decode`
    reconstructs). A message holds the float32 rows of the samples sent in full (not cached yet,
    or ``epoch < warmup_epochs``), in batch order, then the quantised deltas of the others.
    """

    def __init__(self, bits: int, warmup_epochs: int = 1) -> None:
        _check_bits(bits)
        if warmup_epochs < 0:
            raise ValueError("warmup_epochs must be >= 0")
        self.bits, self.warmup_epochs = bits, warmup_epochs
        self.cache: dict[int, torch.Tensor] = {}

    def _full(self, ids: torch.Tensor, epoch: int) -> torch.Tensor:
        if epoch < self.warmup_epochs:
            return torch.ones(len(ids), dtype=torch.bool)
        return torch.tensor([int(i) not in self.cache for i in ids.tolist()], dtype=torch.bool)

    def message_size(self, ids: torch.Tensor, shape: Sequence[int], epoch: int) -> int:
        full = int(self._full(ids, epoch).sum())
        per_row = math.prod(shape[1:])
        return 4 * full * per_row + quantized_size(len(ids) - full, per_row, self.bits)

    def _store(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        for i, row in zip(ids.tolist(), rows):
            self.cache[int(i)] = row.clone()

    def encode(self, x: torch.Tensor, ids: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().float()
        full = self._full(ids, epoch)
        recon = x.clone()
        parts = [raw_bytes(x[full])]
        if (~full).any():
            idx = (~full).nonzero().squeeze(1)
            cached = torch.stack([self.cache[int(ids[j])] for j in idx.tolist()])
            message, q = encode_rows(x[idx] - cached, self.bits)
            recon[idx] = cached + q
            parts.append(message)
        self._store(ids, recon)
        return torch.cat(parts), recon

    def decode(self, message: torch.Tensor, ids: torch.Tensor, shape: Sequence[int], epoch: int) -> torch.Tensor:
        if message.numel() != self.message_size(ids, shape, epoch):
            raise ValueError(f"message of {message.numel()} bytes, expected {self.message_size(ids, shape, epoch)}")
        full = self._full(ids, epoch)
        per_row = math.prod(shape[1:])
        n_full = int(full.sum())
        recon = torch.empty(tuple(shape))
        recon[full] = from_raw(message[: 4 * n_full * per_row], (n_full, *shape[1:]))
        if (~full).any():
            idx = (~full).nonzero().squeeze(1)
            cached = torch.stack([self.cache[int(ids[j])] for j in idx.tolist()])
            recon[idx] = cached + decode_rows(message[4 * n_full * per_row:], self.bits, (len(idx), *shape[1:]))
        self._store(ids, recon)
        return recon


# ── DiLoCo ───────────────────────────────────────────────────────────
class PseudoGradCodec:
    """Pseudo-gradients of one replica as a message: ``none`` (float32), ``quant`` (``bits`` per
    value, one max-abs scale per tensor) or ``topk`` (the ``fraction`` largest magnitudes of each
    tensor as int32 index + float32 value). With compression and ``error_feedback`` the part not
    sent is kept and added to the next pseudo-gradient, so nothing is lost for good."""

    def __init__(self, kind: str = "none", bits: int = 8, fraction: float = 0.1, error_feedback: bool = True) -> None:
        if kind not in ("none", "quant", "topk"):
            raise ValueError(f"unknown pseudo-gradient compression {kind!r}")
        if kind == "quant":
            _check_bits(bits)
        if kind == "topk" and not 0 < fraction <= 1:
            raise ValueError("topk fraction must be in (0, 1]")
        self.kind, self.bits, self.fraction, self.error_feedback = kind, bits, fraction, error_feedback
        self.residual: list[torch.Tensor] | None = None

    def _k(self, numel: int) -> int:
        return max(1, math.ceil(self.fraction * numel))

    def message_size(self, shapes: Sequence[Sequence[int]]) -> int:
        sizes = [math.prod(s) for s in shapes]
        if self.kind == "none":
            return 4 * sum(sizes)
        if self.kind == "quant":
            return sum(quantized_size(1, n, self.bits) for n in sizes)
        return sum(8 * self._k(n) for n in sizes)

    def encode(self, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(message, what the receivers will decode)."""
        tensors = [t.detach().float() for t in tensors]
        if self.kind == "none":
            return torch.cat([raw_bytes(t) for t in tensors]), tensors
        if self.residual is None:
            self.residual = [torch.zeros_like(t) for t in tensors]
        parts, sent = [], []
        for j, t in enumerate(tensors):
            target = t + self.residual[j]
            if self.kind == "quant":
                message, q = encode_rows(target.reshape(1, -1), self.bits)
                q = q.reshape(t.shape)
            else:
                flat = target.reshape(-1)
                order = torch.sort(flat.abs(), descending=True, stable=True).indices[: self._k(flat.numel())]
                order = torch.sort(order).values
                values = flat[order]
                message = torch.cat([order.to(torch.int32).view(torch.uint8), raw_bytes(values)])
                q = torch.zeros_like(flat)
                q[order] = values
                q = q.reshape(t.shape)
            if self.error_feedback:
                self.residual[j] = target - q
            parts.append(message)
            sent.append(q)
        return torch.cat(parts), sent

    def decode(self, message: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        if message.numel() != self.message_size(shapes):
            raise ValueError(f"message of {message.numel()} bytes, expected {self.message_size(shapes)}")
        out, offset = [], 0
        for shape in shapes:
            n = math.prod(shape)
            if self.kind == "none":
                size = 4 * n
                out.append(from_raw(message[offset:offset + size], shape))
            elif self.kind == "quant":
                size = quantized_size(1, n, self.bits)
                out.append(decode_rows(message[offset:offset + size], self.bits, (1, n)).reshape(tuple(shape)))
            else:
                k = self._k(n)
                size = 8 * k
                chunk = message[offset:offset + size]
                index = chunk[: 4 * k].clone().view(torch.int32).to(torch.int64)
                values = chunk[4 * k:].clone().view(torch.float32)
                flat = torch.zeros(n)
                flat[index] = values
                out.append(flat.reshape(tuple(shape)))
            offset += size
        return out


@dataclass
class OuterNesterov:
    """DiLoCo's outer optimizer: SGD with Nesterov momentum on the averaged pseudo-gradient.

    ``v <- mu * v + g``; ``theta <- theta - lr * (g + mu * v)``. With ``lr = 1, mu = 0`` this is
    plain parameter averaging.
    """

    lr: float = 0.7
    momentum: float = 0.9

    def __post_init__(self) -> None:
        self.velocity: list[torch.Tensor] | None = None

    def step(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        """Update ``params`` (the global copy) in place."""
        if self.velocity is None:
            self.velocity = [torch.zeros_like(p) for p in params]
        with torch.no_grad():
            for p, g, v in zip(params, grads, self.velocity):
                v.mul_(self.momentum).add_(g)
                p.sub_(self.lr * (g + self.momentum * v))


def average(messages: Sequence[torch.Tensor], codec: PseudoGradCodec, shapes: Sequence[Sequence[int]]
            ) -> list[torch.Tensor]:
    """Mean of the replicas' decoded pseudo-gradients, summed in replica order (the same bits on
    every replica)."""
    total = None
    for message in messages:
        decoded = codec.decode(message, shapes)
        total = decoded if total is None else [a + b for a, b in zip(total, decoded)]
    return [t / len(messages) for t in total]
