// keccak256 Merkle commitments to tensors and datasets, byte for byte those of offchain/ml/commit.py
// (the rules are in its docstring and docs/proof-of-learning.md).
import { concatBytes, keccak256, numberToBytes } from "viem";

/** Leaf size in bytes (512 float32 elements), `LEAF_BYTES` in commit.py. */
export const LEAF_BYTES = 2048;
const ZERO_HASH = new Uint8Array(32);
const hash = (data: Uint8Array) => keccak256(data, "bytes");

const ZERO_SUBTREES: Uint8Array[] = [ZERO_HASH];
for (let height = 0; height < 64; height++) ZERO_SUBTREES.push(hash(concatBytes([ZERO_SUBTREES[height], ZERO_SUBTREES[height]])));

/** Root over 32-byte leaf hashes, padded to a power of two with bytes32(0) leaves. */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (!leaves.length) return ZERO_HASH;
  let level = [...leaves];
  for (let height = 0; level.length > 1; height++) {
    if (level.length & 1) level.push(ZERO_SUBTREES[height]);
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(hash(concatBytes([level[i], level[i + 1]])));
    level = next;
  }
  return level[0];
}

/** keccak256(abi.encode(bytes32 root, uint256 count)). */
export const sizedRoot = (root: Uint8Array, count: number): Uint8Array => hash(concatBytes([root, numberToBytes(count, { size: 32 })]));

/** keccak256 of each leaf; the last one zero-padded to a multiple of 32 bytes. */
export function leafHashes(data: Uint8Array, leafBytes = LEAF_BYTES): Uint8Array[] {
  const hashes: Uint8Array[] = [];
  for (let offset = 0; offset < data.length; offset += leafBytes) {
    const leaf = data.subarray(offset, Math.min(offset + leafBytes, data.length));
    const padded = leaf.length % 32 ? concatBytes([leaf, new Uint8Array(32 - (leaf.length % 32))]) : leaf;
    hashes.push(hash(padded));
  }
  return hashes;
}

const littleEndian = (array: Float32Array | BigInt64Array): Uint8Array => {
  const out = new Uint8Array(array.length * array.BYTES_PER_ELEMENT);
  const view = new DataView(out.buffer);
  array.forEach((value: number | bigint, i: number) => {
    if (typeof value === "bigint") view.setBigInt64(i * 8, value, true);
    else view.setFloat32(i * 4, value, true);
  });
  return out;
};

/** `bytes_root`: the root of `numel` elements already serialized (C order, little-endian). */
export const bytesRoot = (data: Uint8Array, numel: number): Uint8Array => sizedRoot(merkleRoot(leafHashes(data)), numel);

/** `tensor_root`: a float32 tensor's elements in C order, little-endian. */
export const tensorRoot = (values: Float32Array): Uint8Array => bytesRoot(littleEndian(values), values.length);

/** `checkpoint_root`: the Merkle root over tensor roots in the spec's parameter order. */
export const checkpointRoot = (tensors: readonly Float32Array[]): Uint8Array => merkleRoot(tensors.map(tensorRoot));

/** `dataset_root`: rows of `x` (`dim` float32 each) with their int64 labels `y`. */
export function datasetRoot(x: Float32Array, y: BigInt64Array, dim: number): Uint8Array {
  if (x.length !== y.length * dim) throw new Error(`x has ${x.length} values, not ${y.length} rows of ${dim}`);
  const rows: Uint8Array[] = [];
  for (let i = 0; i < y.length; i++) {
    rows.push(hash(concatBytes([littleEndian(x.subarray(i * dim, (i + 1) * dim)), littleEndian(y.subarray(i, i + 1))])));
  }
  return sizedRoot(merkleRoot(rows), y.length);
}
