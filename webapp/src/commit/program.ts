// Training programs (`dtm-program/1`) read in the page as offchain/ml/program.py reads them: the
// strict parse of an exported program, its root (what a program task names as graph_root), its
// work per step (`Program.work`), and the optimizer its meta names with the hyper table it implies
// (offchain/ml/optim.py). Shapes of non-leaf nodes are re-derived by the workers only (they run
// each ATen kernel on meta tensors); everything else `Program.from_dict` and `validate` check is
// checked here.
import { bytesToHex, encodeAbiParameters, keccak256, parseAbiParameters, stringToBytes } from "viem";
import { bytesRoot, merkleRoot, sizedRoot, tensorRoot } from "./merkle";
import { parseJson, utf8, type JsonValue } from "./json";
import { canonicalJson, type Json } from "./task";

export class ProgramError extends Error {
  name = "ProgramError"; // program.js is a bundle of its own: the page knows its errors by name
}
const fail = (why: string): never => { throw new ProgramError(why); };

// ── the op set (offchain/ml/ops.py: opcode and work per op) ─────────
type Work = "none" | "numel" | "reduced" | "mm" | "conv" | "conv_grad" | "norm" | "softmax";
const TABLE: [Work, string][] = [
  ["none", "state 0 data_x 1 data_y 2 const 12 hyper 13 rng 14 view 15 recv 83"],
  ["numel", "add 4 relu 6 threshold_backward 7 neg 16 abs 17 exp 18 log 19 sqrt 20 rsqrt 21 reciprocal 22 tanh 23 erf 24 " +
    "sigmoid 25 gelu 26 gelu_backward 27 sub 28 mul 29 div 30 maximum 31 minimum 32 where 33 eq 34 ne 35 lt 36 le 37 gt 38 " +
    "ge 39 cat 40 cast 41 silu 42 logical_not 43 tanh_backward 44 sigmoid_backward 45 silu_backward 46 logical_and 47 " +
    "logical_or 48 max_pool2d 60 max_pool2d_indices 61 max_pool2d_grad 62 nll_loss 77 nll_loss_weight 78 nll_loss_grad 79 " +
    "embedding 80 embedding_grad 81 bernoulli 82"],
  ["reduced", "sum 50 mean 51 amax 52"],
  ["mm", "mm 53 bmm 54 addmm 55"],
  ["conv", "conv2d 56"],
  ["conv_grad", "conv2d_grad_input 57 conv2d_grad_weight 58 conv2d_grad_bias 59"],
  ["norm", "layer_norm 63 layer_norm_mean 64 layer_norm_rstd 65 layer_norm_grad_input 66 layer_norm_grad_weight 67 " +
    "layer_norm_grad_bias 68 group_norm 69 group_norm_mean 70 group_norm_rstd 71"],
  ["softmax", "softmax 72 safe_softmax 73 log_softmax 74 softmax_grad 75 log_softmax_grad 76"],
];
/** op name -> [opcode, how its work is counted]. */
export const OPS: ReadonlyMap<string, readonly [number, Work]> = new Map(TABLE.flatMap(([work, list]) => {
  const words = list.split(" ");
  return words.filter((_, i) => i % 2 === 0).map((name, i) => [name, [Number(words[2 * i + 1]), work] as const]);
}));
export const LEAVES = new Set(["state", "data_x", "data_y", "hyper", "const", "rng", "recv"]);

const MAX_PROGRAM_BYTES = 64 * 1024 * 1024, MAX_NODES = 1 << 16, MAX_RANK = 8, MAX_INPUTS = 8, MAX_ATTRS = 32;
const MAX_NUMEL = 2 ** 31;
const DTYPE_CODES: Record<string, number> = { f32: 0, i64: 1, bool: 2 };
const ITEMSIZE: Record<string, number> = { f32: 4, i64: 8, bool: 1 };
const UINT256 = (1n << 256n) - 1n;

export interface Node { id: number; op: string; dtype: string; inputs: number[]; shape: number[]; attrs: bigint[]; numel: number }
export interface StateSlot { name: string; shape: number[]; kind: StateKind }
type StateKind = "param" | "buffer" | "stat";
const isStateKind = (value: JsonValue): value is StateKind => value === "param" || value === "buffer" || value === "stat";
export interface Program {
  bytes: Uint8Array; // `Program.to_bytes()`: the canonical JSON the task's model CID names
  nodes: Node[]; state: StateSlot[]; outputs: number[]; loss: number; hyperNames: string[];
  sources: string[]; // the model line of each node, for messages (not committed)
  meta: { [key: string]: JsonValue };
}

/** A parsed value as canonical_json writes it back (non-integer numbers are Python floats). */
const canonical = (v: JsonValue): Json => typeof v === "number" ? { float: v } : Array.isArray(v) ? v.map(canonical)
  : v !== null && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, canonical(x)])) : v;
const isObject = (v: JsonValue): v is { [key: string]: JsonValue } => v !== null && typeof v === "object" && !Array.isArray(v);
function list(value: JsonValue, what: string): JsonValue[] {
  return Array.isArray(value) ? value : fail(`${what} must be a list`);
}
/** `strict_int`: an integer (not a float, not a bool) within [low, high]. */
function int(value: JsonValue, what: string, low: bigint, high: bigint): bigint {
  if (typeof value !== "bigint") return fail(`${what} must be an integer, got ${value === null ? "null" : typeof value}`);
  return low <= value && value <= high ? value : fail(`${what} must be in [${low}, ${high}], got ${value}`);
}
const small = (value: JsonValue, what: string, low: number, high: number) => Number(int(value, what, BigInt(low), BigInt(high)));
const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
function shapeOf(value: JsonValue, what: string): number[] {
  if (!Array.isArray(value) || value.length > MAX_RANK) fail(`${what} must be a list of at most ${MAX_RANK} sizes`);
  const shape = (value as JsonValue[]).map((s) => small(s, what, 1, MAX_NUMEL));
  return numelOf(shape) > MAX_NUMEL ? fail(`${what} [${shape}] has too many elements`) : shape;
}
function keys(obj: { [key: string]: JsonValue }, expected: string[], what: string): void {
  const got = Object.keys(obj), missing = expected.filter((k) => !got.includes(k)), extra = got.filter((k) => !expected.includes(k));
  if (missing.length) fail(`${what} lacks ${missing.join(", ")}`);
  if (extra.length) fail(`${what} has unknown key(s) ${extra.join(", ")}`);
}

function parseNode(index: number, raw: JsonValue): Node {
  if (!Array.isArray(raw) || raw.length !== 5) return fail(`node ${index}: expected [op, dtype, inputs, shape, attrs]`);
  const [op, dtype, inputs, shape, attrs] = raw;
  if (typeof op !== "string" || !OPS.has(op)) fail(`node ${index}: unknown op ${JSON.stringify(op)}`);
  if (typeof dtype !== "string" || !(dtype in DTYPE_CODES)) fail(`node ${index}: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(inputs) || inputs.length > MAX_INPUTS) fail(`node ${index}: at most ${MAX_INPUTS} inputs`);
  if (!Array.isArray(attrs) || attrs.length > MAX_ATTRS) fail(`node ${index}: at most ${MAX_ATTRS} attrs`);
  const dims = shapeOf(shape, `node ${index} shape`);
  return {
    id: index, op: op as string, dtype: dtype as string, shape: dims, numel: numelOf(dims),
    inputs: (inputs as JsonValue[]).map((i) => small(i, `node ${index} input`, 0, index - 1)),
    attrs: (attrs as JsonValue[]).map((a) => int(a, `node ${index} attr`, 0n, UINT256)),
  };
}

/** Strict base64 (Python's `b64decode(validate=True)`). */
function base64(text: string, what: string): Uint8Array {
  if (text.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) fail(`${what} is not base64`);
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** `constant_root` of a constant's little-endian bytes (bool committed as int64). */
function constantRoot(node: Node, data: Uint8Array): bigint {
  if (node.dtype === "f32") {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i < node.numel; i++) {
      const v = view.getFloat32(4 * i, true);
      if (Number.isNaN(v) || v === Infinity) fail(`constant of node ${node.id} holds NaN or +Inf`);
    }
  }
  const bytes = node.dtype === "bool" ? Uint8Array.from({ length: 8 * node.numel }, (_, i) => (i % 8 === 0 && data[i / 8] ? 1 : 0)) : data;
  return BigInt(bytesToHex(bytesRoot(bytes, node.numel)));
}

/** `Program.from_bytes`: the strict parse of untrusted bytes, checked as `validate` checks it
 *  (but for the shapes of non-leaf nodes, which the workers re-derive). */
export function parseProgram(bytes: Uint8Array): Program {
  if (bytes.length > MAX_PROGRAM_BYTES) fail(`the program is ${bytes.length} bytes, limit ${MAX_PROGRAM_BYTES}`);
  let obj: JsonValue;
  try {
    obj = parseJson(utf8(bytes, "the program"), "the program");
  } catch (error) {
    return fail((error as Error).message);
  }
  if (!isObject(obj)) return fail("the program must be a JSON object");
  keys(obj, ["format", "nodes", "state", "outputs", "loss", "hyper", "constants", "sources", "meta"], "the program");
  if (obj.format !== "dtm-program/1") fail(`program format must be 'dtm-program/1', not ${JSON.stringify(obj.format)}`);
  const raw = obj.nodes;
  if (!Array.isArray(raw) || !(raw.length > 0 && raw.length <= MAX_NODES)) fail(`program needs 1..${MAX_NODES} nodes`);
  const nodes = (raw as JsonValue[]).map((r, i) => parseNode(i, r));
  const state = list(obj.state, "state").map((s): StateSlot => {
    if (!(Array.isArray(s) && s.length === 3 && typeof s[0] === "string" && isStateKind(s[2]))) {
      return fail("state entries are [name, shape, 'param'|'buffer'|'stat']");
    }
    return { name: s[0], shape: shapeOf(s[1], "state shape"), kind: s[2] };
  });
  if (!isObject(obj.constants)) fail("constants must be an object");
  const constants = new Map<number, bigint>();
  for (const [key, text] of Object.entries(obj.constants as { [key: string]: JsonValue })) {
    if (!/^\d+$/.test(key) || typeof text !== "string" || Number(key) >= nodes.length) fail(`constant ${JSON.stringify(key)} is malformed`);
    const node = nodes[Number(key)], data = base64(text as string, `constant ${key}`);
    if (data.length !== node.numel * ITEMSIZE[node.dtype]) fail(`constant of node ${node.id} has ${data.length} bytes, expected ${node.numel * ITEMSIZE[node.dtype]}`);
    constants.set(node.id, constantRoot(node, data));
  }
  const sources = list(obj.sources, "sources").map(String), hyperNames = list(obj.hyper, "hyper").map(String);
  const meta = isObject(obj.meta) ? obj.meta : {};
  const program: Program = {
    bytes: stringToBytes(canonicalJson(canonical({ ...obj, sources, hyper: hyperNames, meta }))), nodes, state,
    outputs: list(obj.outputs, "outputs").map((o) => small(o, "output", 0, nodes.length - 1)),
    loss: small(obj.loss, "loss", 0, nodes.length - 1),
    hyperNames, sources, meta,
  };
  validate(program, constants);
  return program;
}

/** What the page reads of a node's inputs and attrs to count its work and reads (Python's meta
 *  run of the kernel refuses every node these refuse, and more). */
const FITS: Partial<Record<Work, (n: Node, ins: Node[]) => boolean>> = {
  reduced: (n, ins) => ins.length === 1 && n.attrs.length >= 1 && n.attrs.slice(1).every((d) => d < BigInt(ins[0].shape.length)),
  mm: (n, ins) => ins.length >= 2 && n.shape.length >= 2 && ins.slice(-2).every((i) => i.shape.length >= 2),
  conv: (_, ins) => ins.length >= 2 && ins[1].shape.length === 4,
  conv_grad: (_, ins) => ins.length === 3 && ins[2].shape.length === 4,
  norm: (_, ins) => ins.length >= 1,
  softmax: (n, ins) => ins.length >= 1 && n.attrs.length >= 1 && n.attrs[0] < BigInt(n.shape.length),
};

function validate(program: Program, constants: Map<number, bigint>): void {
  const { nodes } = program;
  const where = (node: Node) => `node ${node.id} (${node.op})`;
  for (const node of nodes) {
    const fits = FITS[OPS.get(node.op)![1]];
    if (fits && !fits(node, node.inputs.map((i) => nodes[i]))) fail(`${where(node)}: its inputs do not fit the op`);
    if (LEAVES.has(node.op)) {
      if (node.inputs.length) fail(`${where(node)}: a leaf takes no inputs`);
      if ((node.op === "state" || node.op === "const") && node.attrs.length !== 1) fail(`${where(node)}: takes one attr`);
    }
    if (node.op === "view") {
      const source = nodes[node.inputs[0]];
      if (node.inputs.length !== 1 || node.attrs.length !== node.shape.length + 1) fail(`${where(node)}: view takes one input and attrs [offset, stride per dim]`);
      const last = node.shape.reduce((sum, size, d) => sum + BigInt(size - 1) * node.attrs[d + 1], node.attrs[0]);
      if (last >= BigInt(source.numel)) fail(`${where(node)}: view reads element ${last} of a ${source.numel}-element input`);
      if (node.dtype !== source.dtype) fail(`${where(node)}: a view keeps its input's dtype`);
    }
    if (node.op === "const") {
      if (!constants.has(node.id)) fail(`node ${node.id}: const without data`);
      if (constants.get(node.id) !== node.attrs[0]) fail(`node ${node.id}: const data does not match its committed root`);
    }
  }
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  const states = nodes.filter((n) => n.op === "state");
  if (states.length !== program.state.length || states.some((n, i) => n.attrs[0] !== BigInt(i))) fail("state leaves must be numbered 0..n-1 in order");
  program.state.forEach((slot, i) => {
    if (!same(slot.shape, states[i].shape) || states[i].dtype !== "f32") fail(`state '${slot.name}' does not match its leaf`);
  });
  if (program.outputs.length !== program.state.length) fail("a step must output the whole next state");
  program.state.forEach((slot, i) => {
    const out = nodes[program.outputs[i]];
    if (!same(out.shape, slot.shape) || out.dtype !== "f32") fail(`output for '${slot.name}' has shape [${out.shape}], expected [${slot.shape}]`);
  });
  if (nodes[program.loss].shape.length || nodes[program.loss].dtype !== "f32") fail("the loss must be a float32 scalar");
  const hyper = leaf(program, "hyper");
  if (hyper !== null && !same(nodes[hyper].shape, [program.hyperNames.length])) fail("hyper leaf shape does not match the hyper names");
  const singles = nodes.filter((n) => ["data_x", "data_y", "hyper", "rng"].includes(n.op)).map((n) => n.op);
  if (new Set(singles).size !== singles.length) fail("data_x, data_y, hyper and rng appear at most once");
  const rng = leaf(program, "rng");
  if (rng !== null && (nodes[rng].shape.length || nodes[rng].dtype !== "i64")) fail("the rng leaf is an int64 scalar");
  if (leaf(program, "data_x") === null) fail("program has no data_x leaf");
}

export const leaf = (program: Program, op: string): number | null => program.nodes.find((n) => n.op === op)?.id ?? null;
export const batchSize = (program: Program): number => program.nodes[leaf(program, "data_x")!].shape[0];
/** Features a data row holds for the program (`check_program_task`). */
export const inputWidth = (program: Program): number => program.nodes[leaf(program, "data_x")!].shape[1];
export const paramNames = (program: Program): string[] => program.state.filter((s) => s.kind === "param").map((s) => s.name);

// ── commitments ─────────────────────────────────────────────────────
const DESCRIPTOR = parseAbiParameters("uint256, uint256, uint256, uint256[], uint256[], uint256[]");

/** `nodes_root`: the sized Merkle root of the node descriptors. */
export function nodesRoot(program: Program): Uint8Array {
  const hashes = program.nodes.map((n) => keccak256(encodeAbiParameters(DESCRIPTOR, [BigInt(n.id), BigInt(OPS.get(n.op)![0]),
    BigInt(DTYPE_CODES[n.dtype]), n.inputs.map(BigInt), n.shape.map(BigInt), n.attrs]), "bytes"));
  return sizedRoot(merkleRoot(hashes), hashes.length);
}
/** `outputs_hash`: keccak256(abi.encode(uint256[] outputs)). */
export const outputsHash = (program: Program): Uint8Array =>
  keccak256(encodeAbiParameters(parseAbiParameters("uint256[]"), [program.outputs.map(BigInt)]), "bytes");
/** `Program.root`: keccak256(abi.encode(nodes_root, outputs_hash)). */
export const programRoot = (program: Program): Uint8Array =>
  keccak256(encodeAbiParameters(parseAbiParameters("bytes32, bytes32"), [bytesToHex(nodesRoot(program)), bytesToHex(outputsHash(program))]), "bytes");

/** `Program.work()`: FLOPs and bytes moved by one step, counted per op as ops.py counts them. */
export function work(program: Program): { flops: bigint; bytes: bigint; nodes: number } {
  let flops = 0n, moved = 0n;
  for (const node of program.nodes) {
    const ins = node.inputs.map((i) => program.nodes[i]), n = BigInt(node.numel);
    const kernel = (w: Node) => BigInt(w.shape[1] * w.shape[2] * w.shape[3]);
    flops += {
      none: () => 0n, numel: () => n, reduced: () => BigInt(ins[0].numel), softmax: () => 5n * n,
      mm: () => 2n * n * BigInt(ins[ins.length - 2].shape.at(-1)!),
      conv: () => 2n * n * kernel(ins[1]), conv_grad: () => 2n * BigInt(ins[0].numel) * kernel(ins[2]),
      norm: () => 8n * BigInt(Math.max(...ins.map((i) => i.numel))),
    }[OPS.get(node.op)![1]]();
    if (!LEAVES.has(node.op) && node.op !== "view") moved += 4n * (n + ins.reduce((s, i) => s + BigInt(i.numel), 0n));
  }
  return { flops, bytes: moved, nodes: program.nodes.length };
}

// ── the optimizer and its hyper table (offchain/ml/optim.py) ────────
export interface Optimizer {
  name: "sgd" | "adam" | "adamw"; schedule: "constant" | "cosine" | "step"; warmup_steps: number; step_size: number;
  lr: number; momentum: number; beta1: number; beta2: number; eps: number; weight_decay: number; min_lr_ratio: number;
  gamma: number; clip_norm: number;
}
const RANGES: [keyof Optimizer, number, number][] = [["lr", 1e-12, 10], ["momentum", 0, 0.999], ["beta1", 0, 0.9999],
  ["beta2", 0, 0.99999], ["eps", 1e-12, 1], ["weight_decay", 0, 1], ["min_lr_ratio", 0, 1], ["gamma", 0, 1], ["clip_norm", 0, 1e6]];

/** `OptimizerConfig.from_dict` of the program's meta.optimizer (what `dtm task post --program` uses). */
export function parseOptimizer(raw: JsonValue | undefined): Optimizer {
  if (raw === undefined || !isObject(raw)) return fail("the program's meta names no optimizer (export it with `dtm model export`)");
  keys(raw, ["name", "schedule", "warmup_steps", "step_size", ...RANGES.map(([k]) => k)], "optimizer");
  if (!["sgd", "adam", "adamw"].includes(raw.name as string)) fail(`unknown optimizer ${JSON.stringify(raw.name)}`);
  if (!["constant", "cosine", "step"].includes(raw.schedule as string)) fail(`unknown schedule ${JSON.stringify(raw.schedule)}`);
  const out = { name: raw.name, schedule: raw.schedule } as Optimizer;
  for (const key of ["warmup_steps", "step_size"] as const) {
    const v = raw[key];
    if (typeof v !== "bigint" || v < 0n || v > 10n ** 7n) fail(`optimizer.${key} must be an integer in [0, 10^7]`);
    out[key] = Number(v);
  }
  if (out.step_size < 1) fail("optimizer.step_size must be at least 1");
  for (const [key, low, high] of RANGES) {
    const v = raw[key];
    if (typeof v !== "bigint" && typeof v !== "number") return fail(`optimizer.${key} must be a finite number`);
    const value = Number(v);
    if (!(low <= value && value <= high)) fail(`optimizer.${key} must be in [${low}, ${high}], got ${value}`);
    (out as unknown as Record<string, number>)[key] = value;
  }
  return out;
}

/** The optimizer as the task spec writes it (`OptimizerConfig.to_dict`: every number but the two
 *  counts a float). */
export const optimizerJson = (o: Optimizer): Json => Object.fromEntries(Object.entries(o).map(([key, value]) =>
  [key, typeof value === "number" && key !== "warmup_steps" && key !== "step_size" ? { float: value } : value]));

export const hyperNames = (o: Optimizer): string[] => (o.name === "sgd" ? ["lr"] : ["lr", "bias_correction1", "bias_correction2_rsqrt"]);
export const bufferKinds = (o: Optimizer): string[] => (o.name === "sgd" ? (o.momentum ? ["momentum"] : []) : ["exp_avg", "exp_avg_sq"]);

function lrAt(o: Optimizer, step: number, steps: number): number {
  if (step < o.warmup_steps) return o.lr * (step + 1) / o.warmup_steps;
  if (o.schedule === "cosine") {
    const progress = Math.min((step - o.warmup_steps) / Math.max(steps - o.warmup_steps, 1), 1.0);
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
  }
  if (o.schedule === "step") return o.lr * o.gamma ** Math.floor((step - o.warmup_steps) / o.step_size);
  return o.lr;
}

/** `hyper_root`: the tensor root of `hyper_table(steps)`, rows computed in float64 then rounded to
 *  float32. (Math.cos and ** are V8's, not glibc's: they agree but for rare last-ulp cases, which
 *  the rounding to float32 all but always absorbs; the golden vectors check schedules of each kind.) */
export function hyperRoot(o: Optimizer, steps: number): Uint8Array {
  const width = hyperNames(o).length, table = new Float32Array(steps * width);
  for (let s = 0; s < steps; s++) {
    table[s * width] = lrAt(o, s, steps);
    if (width > 1) {
      table[s * width + 1] = 1.0 / (1.0 - o.beta1 ** (s + 1));
      table[s * width + 2] = 1.0 / Math.sqrt(1.0 - o.beta2 ** (s + 1));
    }
  }
  return tensorRoot(table);
}

/** `ProgramTraining`'s checks that the optimizer fits the program. */
export function checkOptimizer(program: Program, o: Optimizer): void {
  const names = hyperNames(o);
  if (names.join() !== program.hyperNames.join()) fail(`the program reads hyper-parameters [${program.hyperNames}], optimizer '${o.name}' provides [${names}]`);
  // the optimizer's buffers for each trained parameter (a frozen one keeps none)
  const buffers = program.state.filter((s) => s.kind === "buffer").length, kinds = bufferKinds(o);
  if ((kinds.length ? buffers % kinds.length : buffers) || buffers > kinds.length * paramNames(program).length) {
    fail(`the program keeps ${buffers} optimizer buffers, optimizer '${o.name}' needs ${kinds.length} (${kinds.join(", ") || "none"}) per trained parameter`);
  }
}

// ── what the dispute game can judge (offchain/dispute/limits.py `program_unjudgeable_reason`) ──
// Checked here: the checkpoint interval, the state, hyper and data-row bounds, and the reads of
// every element of the long reductions (mm, bmm, addmm, sum, mean, amax and the softmax family:
// at most 64 terms in at most 5 lists and 16 leaves; a float32 mm, bmm, addmm or sum longer than
// 64 terms, and a softmax-family row longer than 64 entries, is dissected, so each chunk of 64
// terms within 16 leaves). The reads of the other ops
// (convolutions, normalisation rows, pooling, losses, embeddings) are left to the workers' check.
const MAX_POINTS = 256, MAX_STATE = 1024, MAX_HYPER = 512, MAX_ROW_BYTES = 16_384;
const MAX_OPEN_NODES = 65, MAX_NODE_SIBLINGS = 128, MAX_LINK_OPENINGS = 16;
const MAX_READ = 64, MAX_READ_LISTS = 5, MAX_OPEN_LEAVES = 16, LEAF_BYTES = 2048, EVERY_ELEMENT_UP_TO = 1024, SAMPLED = 64;
const MAX_LONG_REDUCTION = 2 ** 22;
/** Linear reductions and softmax-family rows the game dissects (`program_rules.DISSECTABLE`, `rows.ROWS`);
 *  a row has at most MAX_SOFTMAX_ROW entries. */
const ROWS = new Set(["softmax", "safe_softmax", "log_softmax", "softmax_grad", "log_softmax_grad"]);
const DISSECTABLE = new Set(["mm", "bmm", "addmm", "conv2d", "conv2d_grad_input", "conv2d_grad_weight", "sum",
  "conv2d_grad_bias", "layer_norm_grad_bias", ...ROWS]);
const MAX_SOFTMAX_ROW = 2 ** 15;
type Reads = [number, number[]][];
/** `count` indices from `at`; past MAX_LONG_REDUCTION only their number matters (the read is refused). */
const terms = (count: number, at: (t: number) => number): number[] =>
  count > MAX_LONG_REDUCTION ? new Array(count) : Array.from({ length: count }, (_, t) => at(t));

function unravel(index: number, shape: number[]): number[] {
  const out: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) { out.unshift(index % shape[d]); index = Math.floor(index / shape[d]); }
  return out;
}
const ravel = (multi: number[], shape: number[]) => multi.reduce((flat, i, d) => flat * shape[d] + i, 0);
function along(shape: number[], index: number, dim: number): number[] {
  const stride = numelOf(shape.slice(dim + 1)), size = shape[dim];
  const base = index - (Math.floor(index / stride) % size) * stride;
  return terms(size, (k) => base + k * stride);
}
/** Input elements reduced into output `index` (attrs [keepdim, *dims]), C order. */
function reduced(node: Node, source: number[], index: number): number[] {
  const dims = new Set(node.attrs.slice(1).map(Number)), out = unravel(index, node.shape);
  const axes = source.map((_, d) => d).filter((d) => !dims.has(d));
  const kept = node.attrs[0] ? axes.map((d) => out[d]) : out;
  const multi = source.map(() => 0);
  axes.forEach((d, i) => (multi[d] = kept[i]));
  const red = [...dims].sort((a, b) => a - b), sizes = red.map((d) => source[d]);
  return terms(numelOf(sizes), (combo) => {
    unravel(combo, sizes).forEach((i, j) => (multi[red[j]] = i));
    return ravel(multi, source);
  });
}
/** `program_rules.element_inputs` of the ops checked here, or null for the others. */
function elementReads(node: Node, ins: Node[], index: number): Reads | null {
  const kind = OPS.get(node.op)![1];
  if (kind === "reduced") return [[0, reduced(node, ins[0].shape, index)]];
  if (kind === "softmax") {
    const row = along(node.shape, index, Number(node.attrs[0]));
    if (node.op === "softmax_grad") return [[0, row], [1, row]];
    return node.op === "log_softmax_grad" ? [[0, row], [1, [index]]] : [[0, row]];
  }
  if (kind !== "mm") return null;
  const [rows, cols] = node.shape.slice(-2), batch = Math.floor(index / (rows * cols)), rest = index % (rows * cols);
  const i = Math.floor(rest / cols), j = rest % cols, a = ins.at(-2)!, b = ins.at(-1)!;
  const flipped = node.attrs.length > 0 && Number(node.attrs[0]) !== 0; // B stored [n, k]: its row j
  const [m, k] = a.shape.slice(-2), n = flipped ? b.shape.at(-2)! : b.shape.at(-1)!;
  const reads: Reads = [[ins.length - 2, terms(k, (t) => batch * m * k + i * k + t)],
    [ins.length - 1, terms(k, (t) => batch * k * n + (flipped ? j * k + t : t * n + j))]];
  if (node.op === "addmm") {
    const bias = ins[0].shape, tail = [i, j].slice(2 - bias.length);
    reads.push([0, [ravel(tail.map((v, d) => (bias[d] === 1 ? 0 : v)), bias)]]);
  }
  return reads;
}
/** Siblings of a multiproof of the increasing `indices` of a tree over `count` leaves
 *  (`moves._sibling_positions`). */
function siblingCount(count: number, indices: number[]): number {
  let known = indices, siblings = 0;
  for (let width = 1; width < count; width *= 2) {
    const parents: number[] = [];
    for (let i = 0; i < known.length; i++) {
      if (known[i] % 2 === 0 && known[i + 1] === known[i] + 1) i++;
      else siblings++;
      parents.push(Math.floor(known[i] / 2));
    }
    known = parents;
  }
  return siblings;
}
/** The outputs cut into increasing runs, each within one trace opening (`moves.opening_runs`). */
function openingRuns(count: number, ids: number[]): number[][] {
  const runs: number[][] = [];
  for (const i of ids) {
    const run = runs.at(-1);
    if (!run || i <= run.at(-1)! || run.length === MAX_OPEN_NODES || siblingCount(count, [...run, i]) > MAX_NODE_SIBLINGS) runs.push([i]);
    else run.push(i);
  }
  return runs;
}
/** The elements whose reads stand for a node's (`_sample`). */
function sample(node: Node): number[] {
  const n = node.numel;
  if (n <= EVERY_ELEMENT_UP_TO) return Array.from({ length: n }, (_, i) => i);
  const middle = node.shape.reduce((m, size) => m * size + Math.floor(size / 2), 0);
  const step = Math.max(Math.floor(n / SAMPLED), 1), out = new Set([n - 1, middle]);
  for (let i = 0; i < n; i += step) out.add(i);
  return [...out].sort((a, b) => a - b);
}

/** Why the dispute game could not judge this program task, in `program_unjudgeable_reason`'s
 *  words, or null where the bounds checked here hold. */
export function unjudgeableProgram(program: Program, checkpointInterval: number): string | null {
  const k = checkpointInterval;
  if (k > MAX_POINTS) return `checkpoint interval ${k} exceeds ${MAX_POINTS}: disputing a segment would need a bisect move that the solver worker does not make`;
  const states = program.state.length;
  if (Math.max(program.outputs.length, states) > MAX_STATE) return `the program's ${states} state tensors exceed the ${MAX_STATE} a state root holds`;
  const openings = openingRuns(program.nodes.length, program.outputs).length;
  if (openings > MAX_LINK_OPENINGS) {
    return `the program's ${program.outputs.length} state tensors need ${openings} trace openings; an output link proof takes ${MAX_LINK_OPENINGS}`;
  }
  if (program.hyperNames.length > MAX_HYPER) return `${program.hyperNames.length} hyper-parameters exceed the ${MAX_HYPER} a leaf proof opens`;
  if (program.nodes.some((n) => n.op === "recv")) {
    return "the program is a group participant's step (it receives or sends messages): a task trains a whole model";
  }
  for (const node of program.nodes) {
    const where = `node ${node.id} (${node.op}, from ${program.sources[node.id] || "?"})`;
    const features = node.numel / node.shape[0];
    if (node.op === "data_x" && features * 4 > MAX_ROW_BYTES) return `dataset rows of ${features} features exceed the ${MAX_ROW_BYTES / 4} a data proof compares`;
    const ins = node.inputs.map((i) => program.nodes[i]);
    for (const index of LEAVES.has(node.op) || elementReads(node, ins, 0) === null ? [] : sample(node)) {
      const reads = elementReads(node, ins, index)!;
      if (reads.length > MAX_READ_LISTS) return `${where} reads ${reads.length} input lists; the judge takes ${MAX_READ_LISTS}`;
      const dissected = DISSECTABLE.has(node.op) && node.dtype === "f32" && reads.some(([, flat]) => flat.length > MAX_READ);
      for (const [position, flat] of reads) {
        if (ROWS.has(node.op) && flat.length > MAX_SOFTMAX_ROW) return `${where} has rows of ${flat.length} entries; the judge takes at most ${MAX_SOFTMAX_ROW}`;
        if (flat.length > MAX_LONG_REDUCTION) return `${where} reduces ${flat.length} terms; the dissection inside a reduction takes at most ${MAX_LONG_REDUCTION}`;
        if (flat.length > MAX_READ && !dissected) return `${where} reduces ${flat.length} terms; the chain judges at most ${MAX_READ} (longer reductions of ${node.op} are not dissected yet)`;
        const itemsize = ins[position].dtype === "f32" ? 4 : 8;
        for (let chunk = 0; chunk < flat.length; chunk += MAX_READ) { // a dissected reduction is read a chunk at a time
          const part = flat.slice(chunk, chunk + MAX_READ);
          const leaves = new Set(part.map((i) => Math.floor((i * itemsize) / LEAF_BYTES))).size;
          if (leaves > MAX_OPEN_LEAVES) return `${where} reads ${part.length} elements of node ${ins[position].id} spread over ${leaves} leaves; the dispute game opens at most ${MAX_OPEN_LEAVES}`;
        }
      }
    }
  }
  return null;
}
