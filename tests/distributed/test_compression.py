"""AQ-SGD and DiLoCo compression (offchain/distributed/compression.py): round trips, sizes, caches."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.distributed import compression as C


@given(st.integers(2, 8), st.integers(0, 200), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_pack_round_trip(bits, count, seed):
    codes = torch.randint(0, 1 << bits, (count,), generator=torch.Generator().manual_seed(seed))
    packed = C.pack_bits(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == C.packed_size(count, bits) == math.ceil(count * bits / 8)
    assert torch.equal(C.unpack_bits(packed, bits, count), codes)


@pytest.mark.parametrize("bits", range(2, 9))
def test_quantize_error_bound_and_size(bits):
    x = torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(bits))
    x[2] = 0  # an all-zero row has scale 0 and comes back as zeros
    message, q = C.encode_rows(x, bits)
    assert message.numel() == 5 * 4 + math.ceil(5 * 21 * bits / 8)
    levels = 2 ** (bits - 1) - 1
    bound = x.reshape(5, -1).abs().amax(1) / (2 * levels)
    assert ((x - q).reshape(5, -1).abs().amax(1) <= bound * (1 + 1e-5) + 1e-7).all()
    assert torch.equal(C.decode_rows(message, bits, x.shape), q)
    assert torch.equal(q[2], torch.zeros(7, 3))
    # the largest value of each row is exact up to float rounding
    assert torch.allclose(q.reshape(5, -1).abs().amax(1), x.reshape(5, -1).abs().amax(1))


def test_bad_bits():
    for bits in (1, 9, 0, True):
        with pytest.raises(ValueError):
            C.DeltaCodec(bits)


def _pair(bits=4, warmup=1):
    return C.DeltaCodec(bits, warmup), C.DeltaCodec(bits, warmup)


def test_delta_codec_caches_agree_and_sizes():
    sender, receiver = _pair(bits=3, warmup=1)
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(10, 4, 6, generator=gen)
    shape = (4, 4, 6)
    for epoch in range(4):
        for ids in (torch.tensor([0, 3, 5, 7]), torch.tensor([9, 1, 2, 4])):
            x = base[ids] + 0.1 * epoch * torch.randn(shape, generator=gen)
            message, recon = sender.encode(x, ids, epoch)
            assert message.numel() == receiver.message_size(ids, shape, epoch)
            expect = 4 * 4 * 24 if epoch < 1 else 4 * 4 + math.ceil(4 * 24 * 3 / 8)
            assert message.numel() == expect
            out = receiver.decode(message, ids, shape, epoch)
            assert torch.equal(out, recon)
            if epoch == 0:
                assert torch.equal(out, x)
    assert sender.cache.keys() == receiver.cache.keys() == set(range(10)) - {6, 8}
    assert all(torch.equal(sender.cache[i], receiver.cache[i]) for i in sender.cache)


def test_delta_codec_new_sample_sent_in_full_after_warmup():
    sender, receiver = _pair(bits=2, warmup=0)
    x = torch.randn(2, 5)
    ids = torch.tensor([1, 2])
    message, recon = sender.encode(x, ids, epoch=3)
    assert message.numel() == 2 * 5 * 4 and torch.equal(recon, x)
    assert torch.equal(receiver.decode(message, ids, x.shape, 3), x)
    # one known, one new: the new row in full first, then the known one's delta
    ids = torch.tensor([2, 8])
    message, recon = sender.encode(x + 0.5, ids, epoch=4)
    assert message.numel() == 5 * 4 + 4 + math.ceil(5 * 2 / 8)
    assert torch.equal(receiver.decode(message, ids, x.shape, 4), recon)
    assert torch.equal(recon[1], x[1] + 0.5)


def test_delta_error_shrinks_as_activation_stops_changing():
    # warm-up in full, then the activation moves once and stays
    ids = torch.arange(3)
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    sender, receiver = _pair(bits=2, warmup=1)
    receiver.decode(sender.encode(x, ids, 0)[0], ids, x.shape, 0)
    target = x + torch.randn(3, 16, generator=torch.Generator().manual_seed(2))
    errors = []
    for epoch in range(1, 9):
        message, recon = sender.encode(target, ids, epoch)
        assert torch.equal(receiver.decode(message, ids, x.shape, epoch), recon)
        errors.append((target - recon).abs().max().item())
    assert all(b <= a / 2 + 1e-6 for a, b in zip(errors, errors[1:]))  # with 2 bits: halves at least
    assert errors[-1] < 1e-2 * errors[0]


def test_delta_codec_deterministic():
    def run():
        sender, receiver = _pair(bits=5, warmup=1)
        gen = torch.Generator().manual_seed(3)
        out = []
        for epoch in range(3):
            ids = torch.randperm(6, generator=gen)[:4]
            x = torch.randn(4, 8, generator=gen)
            message, _ = sender.encode(x, ids, epoch)
            out.append(message)
            receiver.decode(message, ids, x.shape, epoch)
        return torch.cat(out)

    assert torch.equal(run(), run())


def test_decode_refuses_wrong_size():
    sender, receiver = _pair()
    ids = torch.tensor([0])
    message, _ = sender.encode(torch.ones(1, 4), ids, 0)
    with pytest.raises(ValueError):
        receiver.decode(message[:-1], ids, (1, 4), 0)


def test_direct_and_raw_codecs():
    x = torch.randn(3, 10)
    ids = torch.arange(3)
    raw = C.RawCodec()
    message, recon = raw.encode(x, ids, 0)
    assert message.numel() == 120 == raw.message_size(ids, x.shape, 0)
    assert torch.equal(raw.decode(message, ids, x.shape, 0), x)
    direct = C.DirectCodec(8)
    message, recon = direct.encode(x, ids, 0)
    assert message.numel() == 12 + 30 == direct.message_size(ids, x.shape, 0)
    assert torch.equal(direct.decode(message, ids, x.shape, 0), recon)
    assert (x - recon).abs().max() <= x.abs().max() / 254 + 1e-6


SHAPES = [(4, 3), (5,), (2, 2, 2)]


def _grads(seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen) for s in SHAPES]


@pytest.mark.parametrize("kind,size", [("none", 4 * 25), ("quant", 3 * 4 + 12 + 5 + 8), ("topk", 8 * (2 + 1 + 1))])
def test_pseudo_grad_codec(kind, size):
    codec = C.PseudoGradCodec(kind, bits=8, fraction=0.1)
    grads = _grads(0)
    message, sent = codec.encode(grads)
    assert message.numel() == codec.message_size(SHAPES) == size
    decoded = C.PseudoGradCodec(kind, bits=8, fraction=0.1).decode(message, SHAPES)
    assert all(torch.equal(a, b) for a, b in zip(decoded, sent))
    if kind == "none":
        assert all(torch.equal(a, b) for a, b in zip(decoded, grads))
    else:  # error feedback: what was not sent is carried to the next round
        assert all(torch.allclose(g, s + r) for g, s, r in zip(grads, sent, codec.residual))
    if kind == "topk":
        flat = grads[0].reshape(-1)
        kept = decoded[0].reshape(-1).nonzero().squeeze(1)
        assert set(kept.tolist()) == set(flat.abs().argsort(descending=True)[:2].tolist())


def test_error_feedback_sends_everything_eventually():
    codec = C.PseudoGradCodec("topk", fraction=0.25)
    g = [torch.tensor([4.0, 3.0, 2.0, 1.0])]
    total = torch.zeros(4)
    for _ in range(4):
        _, sent = codec.encode(g)
        total += sent[0]
    zero = [torch.zeros(4)]
    for _ in range(8):
        _, sent = codec.encode(zero)
        total += sent[0]
    assert torch.allclose(total, 4 * g[0])


def test_outer_nesterov_and_average():
    params = [torch.ones(3)]
    outer = C.OuterNesterov(lr=0.5, momentum=0.9)
    g = [torch.full((3,), 2.0)]
    outer.step(params, g)  # v = 2, step = 0.5 * (2 + 1.8)
    assert torch.allclose(params[0], torch.full((3,), 1 - 1.9))
    outer.step(params, g)  # v = 3.8, step = 0.5 * (2 + 3.42)
    assert torch.allclose(params[0], torch.full((3,), 1 - 1.9 - 2.71))
    plain = C.OuterNesterov(lr=1.0, momentum=0.0)
    p = [torch.zeros(2)]
    plain.step(p, [torch.tensor([1.0, -1.0])])
    assert torch.equal(p[0], torch.tensor([-1.0, 1.0]))
    codec = C.PseudoGradCodec("none")
    msgs = [codec.encode([torch.tensor([1.0, 2.0])])[0], codec.encode([torch.tensor([3.0, 6.0])])[0]]
    assert torch.equal(C.average(msgs, codec, [(2,)])[0], torch.tensor([2.0, 4.0]))


def test_without_error_feedback_nothing_is_carried():
    codec = C.PseudoGradCodec("topk", fraction=0.25, error_feedback=False)
    g = [torch.tensor([4.0, 3.0, 2.0, 1.0])]
    for _ in range(3):
        _, sent = codec.encode(g)
        assert torch.equal(sent[0], torch.tensor([4.0, 0.0, 0.0, 0.0]))
