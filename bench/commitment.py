"""Merkle commitment cost vs one flat keccak256 over the same bytes, for several leaf sizes.

Prints, per leaf size, ``speed ratio = time(flat keccak) / time(Merkle root)`` on one thread
(1.0 = free) and the calldata one proven element costs (one leaf + siblings); then, at
``LEAF_BYTES``, the ratio with the leaves hashed on every core (how roots are computed unless a
caller limits it) and the one-thread ceiling: flat keccak's permutation count over the Merkle
root's (a 2 KiB leaf is 16 rate blocks of 136 bytes for 15.06 of data, plus one per inner node).
The Merkle side is ``bytes_root`` per tensor, as ``tensor_root`` computes it; ``--native off`` times
the per-call keccak path instead of the native batch kernels (``on`` loads them before the small
checkpoint too; ``auto``, the default, is what a process does: load them at its first buffer of
``NATIVE_LOAD_BYTES``, 1 MiB).  Run:

    .venv/bin/python bench/commitment.py [--native auto|on|off]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from offchain.ml import LEAF_BYTES, digits_task, keccak256  # noqa: E402
from offchain.ml.exporter import mlp_preset  # noqa: E402
from offchain.ml.commit import (  # noqa: E402
    KECCAK_BACKEND,
    bytes_root,
    hashing_threads,
    merkle_root,
    native_keccak,
    tensor_bytes,
    tree_depth,
)

LEAF_SIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def checkpoint_with_leaf(blobs: list[bytes], numels: list[int], leaf_bytes: int) -> bytes:
    return merkle_root([bytes_root(b, n, leaf_bytes) for b, n in zip(blobs, numels)])


def measure(name: str, state: dict[str, torch.Tensor], repeats: int) -> None:
    blobs = [tensor_bytes(t) for t in state.values()]
    numels = [t.numel() for t in state.values()]
    joined = b"".join(blobs)
    size = len(joined)
    flat = best_of(lambda: keccak256(joined), repeats)
    print(f"\n{name}: {len(blobs)} tensors, {size / 1024:.1f} KiB; flat keccak {flat * 1e6:.0f} us "
          f"({size / flat / 1e6:.0f} MB/s)")
    print(f"{'leaf bytes':>10} {'merkle us':>10} {'ratio':>6} {'proof calldata B':>17}")
    biggest = max(numels) * 4
    for leaf in LEAF_SIZES:
        with hashing_threads(1):
            t = best_of(lambda: checkpoint_with_leaf(blobs, numels, leaf), repeats)
        leaves = -(-biggest // leaf)
        calldata = leaf + 32 * tree_depth(leaves)
        marker = "  <- LEAF_BYTES" if leaf == LEAF_BYTES else ""
        print(f"{leaf:>10} {t * 1e6:>10.0f} {flat / t:>6.2f} {calldata:>17}{marker}")
    cores = os.cpu_count() or 1
    with hashing_threads(cores):
        t = best_of(lambda: checkpoint_with_leaf(blobs, numels, LEAF_BYTES), repeats)
    print(f"native batch keccak {'in use' if native_keccak() else 'not in use'} (at the end of this checkpoint)")
    print(f"{LEAF_BYTES} B leaves on {cores} threads: {t * 1e6:.0f} us, ratio {flat / t:.2f}; one-thread ceiling "
          f"{permutations([size]) / permutations(numels, LEAF_BYTES):.2f} (keccak permutations, flat / Merkle)")


RATE = 136  # keccak256's rate: bytes absorbed per permutation


def permutations(numels_or_sizes: list[int], leaf: int | None = None) -> int:
    """keccak-f permutations of one flat hash (``leaf`` None: sizes in bytes) or of a checkpoint
    root with ``leaf``-byte leaves (numels of float32 tensors): leaves, inner nodes, sized roots."""
    if leaf is None:
        return sum(size // RATE + 1 for size in numels_or_sizes)
    total = 0
    for numel in numels_or_sizes:
        size = 4 * numel
        full, rest = divmod(size, leaf)
        total += full * (leaf // RATE + 1) + ((rest + -rest % 32) // RATE + 1 if rest else 0)
        total += max(full + bool(rest) - 1, 0) + 1  # inner nodes (64 bytes: one block each), sized root
    return total + len(numels_or_sizes) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--native", choices=["auto", "on", "off"], default="auto")
    args = parser.parse_args()
    if args.native != "auto":
        native_keccak(args.native == "on")
    print(f"keccak backend: {KECCAK_BACKEND}; ratio = flat keccak time / Merkle time (target >= 0.9)")
    demo = digits_task(steps=10, k=10)
    measure("digits checkpoint (64-32-10 MLP)", demo.weights, args.repeats * 5)
    big = mlp_preset(784, (1024, 512), 10, batch_size=1, lr=0.1)[2]
    measure("larger checkpoint (784-1024-512-10 MLP)", big, args.repeats)


if __name__ == "__main__":
    main()
