// A task's proof and checkpoints fetched from the content store and checked as offchain/workers
// checks them (`fetch_result`, `fetch_task`): every file against its CID, the task spec against the
// spec hash on chain, the proof against the proof root on chain, each checkpoint against its root in
// the proof. From them: the trained weights of a finalised task, and the loss curve of a proof
// (`proof_curve` in offchain/workers/submitter.py). A bundle of its own (result.js), which the task
// page loads when first used.
import { bytesToHex, hexToBytes, keccak256, type Hex } from "viem";
import { checkpointRoot, datasetRoot, merkleRoot } from "./commit/merkle";
import { inputWidth, parseProgram, programRoot, type Program } from "./commit/program";
import { roundHalfEven, specHash, type TrainingTask } from "./commit/task";
import { AppError } from "./errors";
import type { Market } from "./market";
import { readHeader, type RawTensor } from "./safetensors";
import { cat } from "./store";

/** `offchain.distributed.group.SPEC_FORMAT` */
const GROUP_SPEC_FORMAT = "dtm-group-spec/1";

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((n, i) => n === b[i]);

/** A published file that fails its check: it is named by its hash, so fetching it again cannot help. */
export class BadArtifact extends AppError {
  name = "BadArtifact"; // result.js is a bundle of its own: the page knows its errors by name
}

/** JSON from the store, or a BadArtifact naming `what`. */
function json(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
  } catch { /* below */ }
  throw new BadArtifact(`The ${what} is not a JSON object.`);
}

/** Exactly the tensors `expected` names (name → allowed dtypes, shape or null for any), as `load_tensors`. */
function loadTensors(bytes: Uint8Array, what: string, expected: Record<string, [string[], number[] | null]>): Map<string, RawTensor> {
  const fail = (message: string): never => { throw new BadArtifact(`The ${what} is not a valid safetensors file: ${message}.`); };
  const tensors = readHeader(fail, bytes);
  const missing = Object.keys(expected).filter((name) => !tensors.has(name));
  const unknown = [...tensors.keys()].filter((name) => !(name in expected));
  if (missing.length) fail(`missing tensor(s) ${missing.join(", ")}`);
  if (unknown.length) fail(`unexpected tensor(s) ${unknown.join(", ")}`);
  for (const [name, [dtypes, shape]] of Object.entries(expected)) {
    const t = tensors.get(name)!;
    if (!dtypes.includes(t.dtype)) fail(`tensor ${name} is ${t.dtype}, not ${dtypes.join(" or ")}`);
    if (shape && !sameShape(t.shape, shape)) fail(`tensor ${name} has shape (${t.shape}), expected (${shape})`);
  }
  return tensors;
}

/** Little-endian float32 values. */
function floats(t: RawTensor): Float32Array {
  const view = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  return Float32Array.from({ length: t.bytes.length / 4 }, (_, i) => view.getFloat32(4 * i, true));
}

/** A linear/ReLU stack: the MLP whose loss the page computes. */
/** A group task (docs/group-tasks.md): its model is its stages' last checkpoints, which the CLI
 *  assembles and checks; the page neither draws nor fetches it. */
export class GroupTask extends AppError {
  name = "GroupTask";
}

export interface Layer { type: "linear" | "relu"; out?: number }
export interface ModelSpec { input_dim: number; layers: Layer[] }

/** A task whose program is not the MLP preset: the page does not run programs, so it draws no curve. */
export class ProgramTask extends AppError {
  name = "ProgramTask";
}

/** What a task's checkpoints hold: every tensor in commitment order (a program's whole state), and
 *  the MLP whose loss the page computes (with the indices of its parameters), if it is one. */
export interface Layout { tensors: [string, number[]][]; mlp: { model: ModelSpec; params: number[] } | null }

/** A program's checkpoint layout; the MLP is the preset's (`offchain.ml.models:MLP`: linear layers
 *  `layers.0`, `layers.2`, … with ReLU between, softmax cross-entropy), found from its parameters. */
export function programLayout(program: Program, inputDim: number): Layout {
  const tensors = program.state.map((slot): [string, number[]] => [slot.name, slot.shape]);
  const params = program.state.flatMap((slot, index) => (slot.kind === "param" ? [index] : []));
  const layers: Layer[] = [];
  let width = inputDim, linear = program.meta.model === "offchain.ml.models:MLP" && program.meta.loss === "cross_entropy"
    && params.length > 0 && params.length % 2 === 0;
  for (let i = 0; linear && i < params.length; i += 2) {
    const [weight, bias] = [program.state[params[i]], program.state[params[i + 1]]];
    const out = weight.shape[0];
    linear = weight.name === `layers.${i}.weight` && bias.name === `layers.${i}.bias` && sameShape(weight.shape, [out, width]) &&
      sameShape(bias.shape, [out]);
    layers.push(...(i ? [{ type: "relu" } as Layer] : []), { type: "linear", out });
    width = out;
  }
  return { tensors, mlp: linear ? { model: { input_dim: inputDim, layers }, params } : null };
}

export interface Proof {
  spec: TrainingTask;
  layout: Layout;
  cids: string[];
  roots: Uint8Array[];
  finalLoss: number;
}

/** The task spec, checked against the spec hash on chain: hashed as published (its optimizer's
 *  floats cannot be told from integers once parsed), and every field the page reads is in those
 *  bytes. A task names a training program and the root of its hyper table. */
function readSpec(raw: Record<string, unknown>, bytes: Uint8Array, onChain: Hex, cid: string): TrainingTask {
  if (!("hyper_root" in raw)) {
    throw new BadArtifact(`The task spec ${cid} names no training program (it has no hyper_root).`);
  }
  try {
    const program = { optimizer: {}, hyper_root: raw.hyper_root as Hex };
    const spec = { ...raw, lr: (raw.optimizer as { lr: number }).lr, seed: BigInt(raw.seed as string), program } as TrainingTask;
    if (specHash(spec, keccak256(bytes)) === onChain) return spec;
  } catch { /* below */ }
  throw new BadArtifact(`The task spec ${cid} does not hash to the task's spec hash on chain.`);
}

/** The proof with root `proofRoot` of task `id`. */
export async function fetchProof(market: Market, api: string, id: bigint, proofRoot: Hex): Promise<Proof> {
  const [task, created, submitted] = await Promise.all([market.task(id), market.events("TaskCreated", id), market.events("ProofSubmitted", id)]);
  const event = submitted.filter((e) => e.proof_root === proofRoot).at(-1);
  if (!event) throw new AppError(`Task ${id} has no proof with root ${proofRoot}.`);

  const specBytes = await cat(api, created[0].spec_cid as string, "task spec");
  const raw = json(specBytes, "task spec");
  if (raw.format === GROUP_SPEC_FORMAT) {
    throw new GroupTask(`Task ${id} is a group task (its spec document says ${raw.stages} stages × ${raw.replicas} replicas): ` +
      `\`dtm task result ${id} --out FILE\` assembles its model from the stages' checkpoints and checks it.`);
  }
  const spec = readSpec(raw, specBytes, task.spec_hash, created[0].spec_cid as string);
  const modelBytes = await cat(api, spec.model_cid, "model");
  let program: Program;
  try {
    program = parseProgram(modelBytes);
  } catch (error) {
    throw new BadArtifact(`The program ${spec.model_cid} is not a valid program: ${(error as Error).message}.`);
  }
  if (bytesToHex(programRoot(program)) !== spec.graph_root) throw new BadArtifact(`The program ${spec.model_cid} is not the task's graph root.`);
  const layout = programLayout(program, inputWidth(program));
  const proof = json(await cat(api, event.proof_cid as string, "proof"), `proof ${event.proof_cid}`);
  const { checkpoint_roots: roots, checkpoint_cids: cids, final_loss: finalLoss } = proof;
  const count = spec.steps / spec.checkpoint_interval + 1;
  if (!Array.isArray(roots) || !Array.isArray(cids) || roots.length !== count || cids.length !== count ||
    !roots.every((r) => typeof r === "string" && /^0x[0-9a-f]{64}$/.test(r)) || !cids.every((c) => typeof c === "string")) {
    throw new BadArtifact(`The proof ${event.proof_cid} does not list the ${count} checkpoints of task ${id}.`);
  }
  const rootBytes = roots.map((root) => hexToBytes(root as Hex));
  if (bytesToHex(merkleRoot(rootBytes)) !== event.proof_root) {
    throw new BadArtifact(`The proof ${event.proof_cid} does not match the proof root task ${id} committed.`);
  }
  return { spec, layout, cids, roots: rootBytes, finalLoss: Number(finalLoss) };
}

/** The tensors of weights or a checkpoint, in commitment order (`weights_from_bytes`). */
export function readTensors(bytes: Uint8Array, layout: Layout, what: string): Float32Array[] {
  const tensors = loadTensors(bytes, what, Object.fromEntries(layout.tensors.map(([name, shape]) => [name, [["F32"], shape]])));
  const values = layout.tensors.map(([name]) => floats(tensors.get(name)!));
  if (values.some((v) => v.some((x) => !Number.isFinite(x)))) throw new BadArtifact(`The ${what} holds NaN or infinity.`);
  return values;
}

/** Checkpoint `index` of `proof`: its bytes and its tensors in commitment order, checked against
 *  the checkpoint's root in the proof. */
export async function fetchCheckpoint(api: string, proof: Proof, index: number) {
  const bytes = await cat(api, proof.cids[index], `checkpoint ${index}`);
  const tensors = readTensors(bytes, proof.layout, `checkpoint ${index} ${proof.cids[index]}`);
  if (bytesToHex(checkpointRoot(tensors)) !== bytesToHex(proof.roots[index])) {
    throw new BadArtifact(`Checkpoint ${index} (${proof.cids[index]}) does not match its committed root in the proof: ` +
      "the proof's solver published other weights than it committed to.");
  }
  return { bytes, tensors };
}

export interface Result { weights: Uint8Array; weightsCid: string; finalLoss: number; checkpoints: number }

/** The trained weights of a finalised task: the last checkpoint of the proof it was paid for. */
export async function fetchResult(market: Market, api: string, id: bigint): Promise<Result> {
  const [finalised] = await market.events("TaskFinalised", id);
  if (!finalised) throw new AppError(`Task ${id} is not finalised: its result is ready once the solver has been paid.`);
  const proof = await fetchProof(market, api, id, finalised.proof_root as Hex);
  const last = proof.cids.length - 1;
  const { bytes } = await fetchCheckpoint(api, proof, last);
  return { weights: bytes, weightsCid: proof.cids[last], finalLoss: proof.finalLoss, checkpoints: proof.roots.length };
}

export interface Rows { x: Float32Array; labels: Int32Array; dim: number }

/** The task's training rows (safetensors `x` float32 (rows, input_dim), `y` int64 or int32 labels
 *  below the model's classes), checked against the task's dataset root. */
export function readRows(bytes: Uint8Array, spec: TrainingTask, model: ModelSpec): Rows {
  const what = `dataset ${spec.dataset_cid}`;
  const [rows, dim, classes] = [spec.dataset_rows, model.input_dim, model.layers.at(-1)!.out!];
  const tensors = loadTensors(bytes, what, { x: [["F32"], [rows, dim]], y: [["I64", "I32"], [rows]] });
  const ys = tensors.get("y")!, view = new DataView(ys.bytes.buffer, ys.bytes.byteOffset, ys.bytes.byteLength);
  const y = BigInt64Array.from({ length: rows }, (_, i) => (ys.dtype === "I64" ? view.getBigInt64(8 * i, true) : BigInt(view.getInt32(4 * i, true))));
  if (y.some((label) => label < 0n || label >= BigInt(classes))) throw new BadArtifact(`The ${what} has labels outside the model's ${classes} classes.`);
  const x = floats(tensors.get("x")!);
  if (bytesToHex(datasetRoot(x, y, dim)) !== spec.dataset_root) throw new BadArtifact(`The ${what} does not match the task's dataset root.`);
  return { x, labels: Int32Array.from(y, Number), dim };
}

/** Mean softmax cross-entropy of the MLP with `params` over `rows` (`score(...).loss` in
 *  submitter.py), accumulated in float64 (torch computes in float32: they agree to ~1e-6). */
export function meanLoss(model: ModelSpec, params: Float32Array[], rows: Rows): number {
  const count = rows.labels.length;
  let total = 0;
  for (let row = 0; row < count; row++) {
    let a: Float64Array = Float64Array.from(rows.x.subarray(row * rows.dim, (row + 1) * rows.dim));
    let p = 0;
    for (const layer of model.layers) {
      if (layer.type === "relu") {
        for (let i = 0; i < a.length; i++) if (a[i] < 0) a[i] = 0;
        continue;
      }
      const [weight, bias] = [params[p], params[p + 1]];
      p += 2;
      const out = new Float64Array(layer.out!);
      for (let o = 0; o < out.length; o++) {
        let sum = bias[o];
        for (let i = 0, w = o * a.length; i < a.length; i++) sum += a[i] * weight[w + i];
        out[o] = sum;
      }
      a = out;
    }
    let top = -Infinity, exps = 0;
    for (const v of a) top = Math.max(top, v);
    for (const v of a) exps += Math.exp(v - top);
    total += top + Math.log(exps) - a[rows.labels[row]];
  }
  return total / count;
}

/** The checkpoints a curve shows: all of `count`, or `points` evenly spread with the first and the
 *  last (`curve_indices` in submitter.py). */
export function curveIndices(count: number, points = 50): number[] {
  const last = count - 1, shown = Math.max(Math.min(points, count), 2);
  return [...new Set(Array.from({ length: shown }, (_, i) => roundHalfEven((i * last) / (shown - 1))))].sort((a, b) => a - b);
}

export interface Curve { steps: number[]; losses: number[]; checkpoints: number }

/** The loss on the task's training rows at the checkpoints of its proof with root `proofRoot`, each
 *  checked against its committed root first (`loss_curve`). */
async function computeCurve(market: Market, api: string, id: bigint, proofRoot: Hex): Promise<Curve> {
  const proof = await fetchProof(market, api, id, proofRoot);
  const { mlp } = proof.layout;
  if (!mlp) {
    throw new ProgramTask(`Task ${id} trains its own program, which this page does not run: ` +
      `\`dtm task status ${id} --plot\` draws its loss curve.`);
  }
  const rows = readRows(await cat(api, proof.spec.dataset_cid, "dataset"), proof.spec, mlp.model);
  const curve: Curve = { steps: [], losses: [], checkpoints: proof.cids.length };
  for (const index of curveIndices(proof.cids.length)) {
    const { tensors } = await fetchCheckpoint(api, proof, index);
    curve.steps.push(index * proof.spec.checkpoint_interval);
    curve.losses.push(meanLoss(mlp.model, mlp.params.map((i) => tensors[i]), rows));
  }
  return curve;
}

const curves = new Map<string, Promise<Curve>>();

/** `computeCurve`, once per proof (a failure too, until `retry`): the page asks on every block. */
export function lossCurve(market: Market, api: string, id: bigint, proofRoot: Hex, retry = false): Promise<Curve> {
  const key = `${market.address}/${id}/${proofRoot}`;
  if (retry || !curves.has(key)) curves.set(key, computeCurve(market, api, id, proofRoot));
  return curves.get(key)!;
}
