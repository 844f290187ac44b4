// The MLP preset, byte for byte as offchain/ml builds it: the model spec (`dtm-model/1`), its
// initial weights (numpy's PCG64, seeded through SeedSequence) as safetensors, and the root of its
// compiled training graph (offchain/ml/graph.py).
import { concatBytes, encodeAbiParameters, keccak256, parseAbiParameters, stringToBytes } from "viem";
import { checkpointRoot, merkleRoot, sizedRoot } from "./merkle";
import { canonicalJson, type Json } from "./task";

export interface Layer { type: "linear" | "relu"; out?: number }
export interface ModelSpec { input_dim: number; layers: Layer[] }

/** Linear/relu stack with the given hidden widths (`mlp_spec`). */
export function mlpSpec(inputDim: number, hidden: readonly number[], classes: number): ModelSpec {
  const layers: Layer[] = hidden.flatMap((out) => [{ type: "linear", out }, { type: "relu" }] as Layer[]);
  return { input_dim: inputDim, layers: [...layers, { type: "linear", out: classes }] };
}

export const specBytes = (spec: ModelSpec): Uint8Array => stringToBytes(canonicalJson({
  format: "dtm-model/1", input_dim: spec.input_dim, loss: "softmax_cross_entropy",
  layers: spec.layers.map((layer): Json => (layer.type === "linear" ? { type: "linear", out: layer.out! } : { type: layer.type })),
}));

/** Parameters in canonical order: `l{i}.weight` (out, in) then `l{i}.bias` (out,). */
export function paramShapes(spec: ModelSpec): [string, number[]][] {
  const shapes: [string, number[]][] = [];
  let width = spec.input_dim;
  spec.layers.forEach((layer, index) => {
    if (layer.type !== "linear") return;
    shapes.push([`l${index}.weight`, [layer.out!, width]], [`l${index}.bias`, [layer.out!]]);
    width = layer.out!;
  });
  return shapes;
}

// ── numpy's PCG64 ───────────────────────────────────────────────────
const M32 = 0xffffffffn, M64 = (1n << 64n) - 1n, M128 = (1n << 128n) - 1n;
const PCG_MULT = 0x2360ed051fc65da44385df649fccf645n;

/** `np.random.SeedSequence(entropy).generate_state(words, np.uint64)`. */
function seedSequence(entropy: bigint, words: number): bigint[] {
  const chunks: bigint[] = [];
  do { chunks.push(entropy & M32); entropy >>= 32n; } while (entropy > 0n);
  let hashConst = 0x43b0d7e5n;
  const hashmix = (value: bigint) => {
    value = (value ^ hashConst) & M32;
    hashConst = (hashConst * 0x931e8875n) & M32;
    value = (value * hashConst) & M32;
    return value ^ (value >> 16n);
  };
  const mix = (x: bigint, y: bigint) => {
    const result = (0xca01f9ddn * x - 0x4973f715n * y) & M32;
    return result ^ (result >> 16n);
  };
  const pool = [0, 1, 2, 3].map((i) => hashmix(chunks[i] ?? 0n));
  for (let src = 0; src < 4; src++) for (let dst = 0; dst < 4; dst++) if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
  for (let src = 4; src < chunks.length; src++) for (let dst = 0; dst < 4; dst++) pool[dst] = mix(pool[dst], hashmix(chunks[src]));
  let stateConst = 0x8b51f9ddn;
  const halves = Array.from({ length: words * 2 }, (_, i) => {
    let value = (pool[i % 4] ^ stateConst) & M32;
    stateConst = (stateConst * 0x58f38dedn) & M32;
    value = (value * stateConst) & M32;
    return value ^ (value >> 16n);
  });
  return Array.from({ length: words }, (_, i) => halves[2 * i] | (halves[2 * i + 1] << 32n));
}

/** `np.random.PCG64(seed)`: its raw 64-bit outputs. */
export function pcg64Raw(seed: number | bigint): () => bigint {
  const [s0, s1, i0, i1] = seedSequence(BigInt(seed), 4);
  const inc = ((((i0 << 64n) | i1) << 1n) | 1n) & M128;
  let state = 0n;
  const step = () => { state = (state * PCG_MULT + inc) & M128; };
  step();
  state = (state + ((s0 << 64n) | s1)) & M128;
  step();
  return () => {
    step();
    const rot = state >> 122n;
    const x = ((state >> 64n) ^ state) & M64;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & M64;
  };
}

/** `np.random.Generator(np.random.PCG64(seed))`: its `random()` doubles. */
export function pcg64(seed: number | bigint): () => number {
  const next = pcg64Raw(seed);
  return () => Number(next() >> 11n) / 9007199254740992;
}

/** `np.random.Generator(np.random.PCG64(seed)).permutation(n)`: the Fisher-Yates shuffle of
 *  `arange(n)` that `Generator.shuffle` runs, with numpy's bounded draws (`random_interval`: a
 *  masked 32-bit draw, the low half of a 64-bit output first, below 2^32; else masked 64-bit). */
export function permutation(seed: number | bigint, n: number): Uint32Array {
  const next = pcg64Raw(seed);
  let spare: number | null = null;
  const next32 = () => {
    if (spare !== null) { const out = spare; spare = null; return out; }
    const value = next();
    spare = Number(value >> 32n);
    return Number(value & M32);
  };
  const out = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i >= 1; i--) {
    let mask = i;
    for (const shift of [1, 2, 4, 8, 16]) mask |= mask >>> shift;
    let j: number;
    do j = (next32() & mask) >>> 0; while (j > i);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Deterministic uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) init (`init_weights`), canonical order. */
export function initWeights(spec: ModelSpec, seed: number): [string, Float32Array][] {
  const random = pcg64(seed);
  let fanIn = 0;
  return paramShapes(spec).map(([name, shape]) => {
    if (shape.length === 2) fanIn = shape[1];
    const bound = 1 / Math.sqrt(fanIn);
    const count = shape.reduce((a, b) => a * b, 1);
    return [name, Float32Array.from({ length: count }, () => -bound + (bound - -bound) * random())];
  });
}

// ── safetensors ─────────────────────────────────────────────────────
export interface Tensor { dtype: "F32" | "I64"; shape: number[]; data: Float32Array | BigInt64Array }

/** safetensors bytes as `safetensors.torch.save` writes them: tensors by element size, then name;
 *  the header padded with spaces to a multiple of 8. */
export function saveTensors(tensors: Record<string, Tensor>): Uint8Array {
  const size = (t: Tensor) => t.data.BYTES_PER_ELEMENT;
  const order = Object.keys(tensors).sort((a, b) => size(tensors[b]) - size(tensors[a]) || (a < b ? -1 : a > b ? 1 : 0));
  let offset = 0;
  const entries = order.map((name) => {
    const t = tensors[name];
    const start = offset;
    offset += t.data.byteLength;
    return `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],"data_offsets":[${start},${offset}]}`;
  });
  let header = `{${entries.join(",")}}`;
  header += " ".repeat((8 - ((header.length) % 8)) % 8);
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(header.length), true);
  const body = order.map((name) => {
    const t = tensors[name];
    const out = new Uint8Array(t.data.byteLength);
    const view = new DataView(out.buffer);
    t.data.forEach((value: number | bigint, i: number) => (typeof value === "bigint" ? view.setBigInt64(i * 8, value, true) : view.setFloat32(i * 4, value, true)));
    return out;
  });
  return concatBytes([length, stringToBytes(header), ...body]);
}

export function weightsBytes(spec: ModelSpec, weights: [string, Float32Array][]): Uint8Array {
  const shapes = new Map(paramShapes(spec));
  return saveTensors(Object.fromEntries(weights.map(([name, data]) => [name, { dtype: "F32", shape: shapes.get(name)!, data }])));
}

export const weightsRoot = (weights: [string, Float32Array][]): Uint8Array => checkpointRoot(weights.map(([, data]) => data));

// ── the training graph ──────────────────────────────────────────────
const OPS = ["param", "data_x", "data_y", "matmul", "add", "add_bias", "relu", "relu_grad", "softmax_xent",
  "softmax_xent_grad", "sum_rows", "sgd"] as const;
type Op = (typeof OPS)[number];
const DESCRIPTOR = parseAbiParameters("uint256, uint256, uint256[], uint256[], uint256[]");

export function float32Bits(value: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value, true);
  return view.getUint32(0, true);
}

interface GraphNode { op: Op; inputs: number[]; shape: number[]; attrs: number[] }

/** The nodes of `compile_training_graph(spec, batchSize, lr)`: forward, softmax cross-entropy,
 *  backward and the SGD update as one flat node list. */
function trainingGraph(spec: ModelSpec, batchSize: number, lr: number): GraphNode[] {
  const nodes: GraphNode[] = [];
  const add = (op: Op, inputs: number[], shape: number[], attrs: number[] = []) => nodes.push({ op, inputs, shape, attrs }) - 1;
  const shape = (id: number) => nodes[id].shape;
  const matmul = (a: number, b: number, ta: boolean, tb: boolean) => {
    const [rows, inner] = ta ? [shape(a)[1], shape(a)[0]] : shape(a);
    const cols = tb ? shape(b)[0] : shape(b)[1];
    return add("matmul", [a, b], [rows, cols], [Number(ta), Number(tb), 0, inner]);
  };
  const shapes = paramShapes(spec);
  const params = new Map(shapes.map(([name, s], index) => [name, add("param", [], s, [index])]));
  const x = add("data_x", [], [batchSize, spec.input_dim]);
  const y = add("data_y", [], [batchSize]);

  let activation = x;
  const linearInputs = new Map<number, number>();
  const reluInputs = new Map<number, number>();
  spec.layers.forEach((layer, index) => {
    if (layer.type === "linear") {
      linearInputs.set(index, activation);
      const z = matmul(activation, params.get(`l${index}.weight`)!, false, true);
      activation = add("add_bias", [z, params.get(`l${index}.bias`)!], shape(z));
    } else {
      reluInputs.set(index, activation);
      activation = add("relu", [activation], shape(activation));
    }
  });
  add("softmax_xent", [activation, y], [batchSize]);
  let grad = add("softmax_xent_grad", [activation, y], shape(activation));

  const grads = new Map<string, number>();
  for (let index = spec.layers.length - 1; index >= 0; index--) {
    if (spec.layers[index].type === "relu") {
      grad = add("relu_grad", [grad, reluInputs.get(index)!], shape(grad));
      continue;
    }
    const input = linearInputs.get(index)!;
    grads.set(`l${index}.weight`, matmul(grad, input, true, false));
    const [rows, cols] = shape(grad);
    grads.set(`l${index}.bias`, add("sum_rows", [grad], [cols], [0, rows]));
    if (input !== x) grad = matmul(grad, params.get(`l${index}.weight`)!, false, false);
  }
  for (const [name, s] of shapes) add("sgd", [params.get(name)!, grads.get(name)!], s, [float32Bits(lr)]);
  return nodes;
}

/** `graph_root`: the training graph committed node by node. */
export function graphRoot(spec: ModelSpec, batchSize: number, lr: number): Uint8Array {
  const nodes = trainingGraph(spec, batchSize, lr);
  const hashes = nodes.map((node, id) => keccak256(encodeAbiParameters(DESCRIPTOR, [BigInt(id), BigInt(OPS.indexOf(node.op)),
    node.inputs.map(BigInt), node.shape.map(BigInt), node.attrs.map(BigInt)]), "bytes"));
  return sizedRoot(merkleRoot(hashes), nodes.length);
}

/** FLOPs of one step (`TrainingGraph.work`, counted as a program's): 2·m·n·k per matmul, one per
 *  output element of every other op, none for the leaves. */
export function graphFlops(spec: ModelSpec, batchSize: number): bigint {
  const size = (shape: number[]) => BigInt(shape.reduce((a, b) => a * b, 1));
  return trainingGraph(spec, batchSize, 0.1).reduce((flops, node) => flops + (node.op === "matmul"
    ? 2n * size(node.shape) * BigInt(node.attrs[3] - node.attrs[2]) : ["param", "data_x", "data_y"].includes(node.op) ? 0n : size(node.shape)), 0n);
}
