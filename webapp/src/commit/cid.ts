// CIDs of files as Kubo's `ipfs add` computes them by default (CIDv0: dag-pb UnixFS leaves, 256 KiB
// chunks, balanced layout of up to 174 links), byte for byte those of offchain/storage/importer.py.
import { concatBytes, sha256, stringToBytes } from "viem";

export const CHUNK_SIZE = 256 * 1024;
export const MAX_LINKS = 174;
const FILE = 2;

function varint(value: number): Uint8Array {
  const out: number[] = [];
  for (; value >= 0x80; value = Math.floor(value / 128)) out.push((value % 128) | 0x80);
  out.push(value);
  return Uint8Array.from(out);
}
const varintField = (number: number, value: number) => concatBytes([varint(number << 3), varint(value)]);
const bytesField = (number: number, value: Uint8Array) => concatBytes([varint((number << 3) | 2), varint(value.length), value]);

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
function base58btc(bytes: Uint8Array): string {
  let n = bytes.reduce((acc, byte) => acc * 256n + BigInt(byte), 0n);
  let out = "";
  for (; n > 0n; n /= 58n) out = ALPHABET[Number(n % 58n)] + out;
  for (const byte of bytes) {
    if (byte) break;
    out = "1" + out;
  }
  return out;
}

interface Node { multihash: Uint8Array; dagSize: number; fileSize: number }

function block(data: Uint8Array, links: readonly Node[] = []): Node {
  const encoded = concatBytes([
    ...links.map((link) => bytesField(2, concatBytes([bytesField(1, link.multihash), bytesField(2, stringToBytes("")), varintField(3, link.dagSize)]))),
    bytesField(1, data),
  ]);
  const multihash = concatBytes([Uint8Array.of(0x12, 0x20), sha256(encoded, "bytes")]);
  const fileSize = links.length ? links.reduce((sum, link) => sum + link.fileSize, 0) : 0;
  return { multihash, dagSize: encoded.length + links.reduce((sum, link) => sum + link.dagSize, 0), fileSize };
}

function leaf(chunk: Uint8Array): Node {
  // the empty file leaves the Data field out, as Kubo does
  const unixfs = concatBytes([varintField(1, FILE), chunk.length ? bytesField(2, chunk) : new Uint8Array(), varintField(3, chunk.length)]);
  return { ...block(unixfs), fileSize: chunk.length };
}

function internal(children: readonly Node[]): Node {
  const fileSize = children.reduce((sum, child) => sum + child.fileSize, 0);
  const unixfs = concatBytes([varintField(1, FILE), varintField(3, fileSize), ...children.map((child) => varintField(4, child.fileSize))]);
  return block(unixfs, children);
}

/** The CID `ipfs add --only-hash` prints for `data` (`compute_cid` in offchain/storage). */
export function computeCid(data: Uint8Array): string {
  let next = 0;
  const done = () => next >= data.length;
  const nextLeaf = () => leaf(data.subarray(next, (next += CHUNK_SIZE)));
  const fill = (children: Node[], depth: number): Node => {
    while (children.length < MAX_LINKS && !done()) children.push(depth === 1 ? nextLeaf() : fill([], depth - 1));
    return internal(children);
  };
  let root = nextLeaf();
  for (let depth = 1; !done(); depth++) root = fill([root], depth);
  return base58btc(root.multihash);
}
