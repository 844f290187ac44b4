// A task's proof and checkpoints fetched from the content store and checked as offchain/workers
// checks them (`fetch_result`, `fetch_task`): every file against its CID, the task spec against the
// spec hash on chain, the proof against the proof root on chain, each checkpoint against its root in
// the proof. From them: the trained weights of a finalised task, and the loss curve of a proof.
import { bytesToHex, hexToBytes, type Hex } from "viem";
import { checkpointRoot, datasetRoot, merkleRoot } from "./commit/merkle";
import { paramShapes, type ModelSpec } from "./commit/model";
import { specHash, taskBytes, type TrainingTask } from "./commit/task";
import { AppError } from "./errors";
import type { Market } from "./market";
import { readDataset } from "./publish";
import { cat } from "./store";

const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i]);

/** The tensors of a safetensors file, by name. */
export function loadTensors(bytes: Uint8Array): Map<string, { dtype: string; shape: number[]; data: DataView }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = Number(view.getBigUint64(0, true));
  const header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = json(bytes.subarray(8, 8 + length));
  delete (header as Record<string, unknown>).__metadata__;
  return new Map(Object.entries(header).map(([name, t]) => [name, {
    dtype: t.dtype, shape: t.shape,
    data: new DataView(bytes.buffer, bytes.byteOffset + 8 + length + t.data_offsets[0], t.data_offsets[1] - t.data_offsets[0]),
  }]));
}

export interface Proof {
  spec: TrainingTask;
  model: ModelSpec;
  cids: string[];
  roots: Uint8Array[];
  finalLoss: number;
}

/** The proof with root `proofRoot` of task `id` (the latest proof when none is named). */
export async function fetchProof(market: Market, api: string, id: bigint, proofRoot?: Hex): Promise<Proof> {
  const [task, created, submitted] = await Promise.all([market.task(id), market.events("TaskCreated", id), market.events("ProofSubmitted", id)]);
  const event = submitted.filter((e) => !proofRoot || e.proof_root === proofRoot).at(-1);
  if (!event) throw new AppError(`Task ${id} has no proof yet: the curve appears once a solver submits one.`);

  const specBytes = await cat(api, created[0].spec_cid as string, "task spec");
  const raw = json(specBytes);
  const spec: TrainingTask = { ...raw, lr: raw.optimizer.lr, seed: BigInt(raw.seed) };
  if (!same(taskBytes(spec), specBytes) || specHash(spec) !== task.spec_hash) {
    throw new AppError(`The task spec ${created[0].spec_cid} does not hash to task ${id}'s spec hash on chain.`);
  }
  const model: ModelSpec = json(await cat(api, spec.model_cid, "model spec"));
  const proof = json(await cat(api, event.proof_cid as string, "proof"));
  const roots: Uint8Array[] = proof.checkpoint_roots.map((root: Hex) => hexToBytes(root));
  if (bytesToHex(merkleRoot(roots)) !== event.proof_root) {
    throw new AppError(`The proof ${event.proof_cid} does not match the proof root task ${id} committed.`);
  }
  return { spec, model, cids: proof.checkpoint_cids, roots, finalLoss: proof.final_loss };
}

/** Checkpoint `index` of `proof`: its bytes and its tensors in the model's parameter order. */
export async function fetchCheckpoint(api: string, proof: Proof, index: number) {
  const bytes = await cat(api, proof.cids[index], `checkpoint ${index}`);
  const tensors = loadTensors(bytes);
  const params = paramShapes(proof.model).map(([name, shape]) => {
    const t = tensors.get(name);
    const count = shape.reduce((a, b) => a * b, 1);
    if (t?.dtype !== "F32" || t.data.byteLength !== 4 * count) throw new AppError(`Checkpoint ${index} lacks a float32 tensor ${name} of shape ${shape}.`);
    return Float32Array.from({ length: count }, (_, i) => t.data.getFloat32(4 * i, true));
  });
  if (bytesToHex(checkpointRoot(params)) !== bytesToHex(proof.roots[index])) {
    throw new AppError(`Checkpoint ${index} (${proof.cids[index]}) does not match its root in the proof.`);
  }
  return { bytes, params };
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

/** Mean softmax cross-entropy of the MLP with `params` over the dataset (`score` in submitter.py). */
function loss(model: ModelSpec, params: Float32Array[], x: Float32Array, y: BigInt64Array, dim: number): number {
  let total = 0;
  for (let row = 0; row < y.length; row++) {
    let activation = Array.from(x.subarray(row * dim, (row + 1) * dim));
    let p = 0;
    model.layers.forEach((layer) => {
      if (layer.type === "relu") {
        activation = activation.map((v) => Math.max(v, 0));
        return;
      }
      const [weight, bias] = [params[p], params[p + 1]];
      p += 2;
      activation = Array.from({ length: layer.out! }, (_, o) =>
        activation.reduce((sum, v, i) => sum + v * weight[o * activation.length + i], bias[o]));
    });
    const top = Math.max(...activation);
    total += top + Math.log(activation.reduce((sum, v) => sum + Math.exp(v - top), 0)) - activation[Number(y[row])];
  }
  return total / y.length;
}

/** The loss of every checkpoint of the task's latest proof on the task's dataset. */
export async function lossCurve(market: Market, api: string, id: bigint): Promise<number[]> {
  const proof = await fetchProof(market, api, id);
  const data = readDataset(await cat(api, proof.spec.dataset_cid, "dataset"), "the task's dataset");
  if (bytesToHex(datasetRoot(data.x, data.y, data.dim)) !== proof.spec.dataset_root) {
    throw new AppError(`The dataset ${proof.spec.dataset_cid} does not match the task's dataset root.`);
  }
  const losses: number[] = [];
  for (let index = 0; index < proof.cids.length; index++) {
    const { params } = await fetchCheckpoint(api, proof, index);
    losses.push(loss(proof.model, params, data.x, data.y, data.dim));
  }
  return losses;
}
