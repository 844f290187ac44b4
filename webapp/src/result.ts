// The trained weights of a finalised task, checked as `dtm task result` checks them
// (offchain/workers/submitter.py `fetch_result`): the task spec against the spec hash on chain, the
// proof against the proof root the task was paid for, the weights against the proof's last
// checkpoint root. Every file is checked against its CID.
import { bytesToHex, hexToBytes, type Hex } from "viem";
import { checkpointRoot, merkleRoot } from "./commit/merkle";
import { paramShapes, type ModelSpec } from "./commit/model";
import { specHash, taskBytes, type TrainingTask } from "./commit/task";
import { AppError } from "./errors";
import type { Market } from "./market";
import { cat } from "./store";

export interface Result { weights: Uint8Array; weightsCid: string; finalLoss: number; checkpoints: number }

const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i]);

/** The float32 tensors of a safetensors file, by name. */
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

export async function fetchResult(market: Market, api: string, id: bigint): Promise<Result> {
  const task = await market.task(id);
  const [created, finalised, submitted] = await Promise.all(["TaskCreated", "TaskFinalised", "ProofSubmitted"]
    .map((name) => market.events(name, id)));
  if (!finalised.length) throw new AppError(`Task ${id} is not finalised: its result is ready once the solver has been paid.`);
  const proofRoot = finalised[0].proof_root as Hex;
  const proofCid = submitted.filter((e) => e.proof_root === proofRoot).at(-1)?.proof_cid as string;

  const specBytes = await cat(api, created[0].spec_cid as string, "task spec");
  const raw = json(specBytes);
  const spec: TrainingTask = { ...raw, lr: raw.optimizer.lr, seed: BigInt(raw.seed) };
  if (!same(taskBytes(spec), specBytes) || specHash(spec) !== task.spec_hash) {
    throw new AppError(`The task spec ${created[0].spec_cid} does not hash to task ${id}'s spec hash on chain.`);
  }
  const model: ModelSpec = json(await cat(api, spec.model_cid, "model spec"));

  const proof = json(await cat(api, proofCid, "proof"));
  const roots: Uint8Array[] = proof.checkpoint_roots.map((root: Hex) => hexToBytes(root));
  if (bytesToHex(merkleRoot(roots)) !== proofRoot) throw new AppError(`The proof ${proofCid} does not match the proof root task ${id} was paid for.`);

  const weightsCid: string = proof.checkpoint_cids.at(-1);
  const weights = await cat(api, weightsCid, "trained weights");
  const tensors = loadTensors(weights);
  const ordered = paramShapes(model).map(([name, shape]) => {
    const t = tensors.get(name);
    const count = shape.reduce((a, b) => a * b, 1);
    if (t?.dtype !== "F32" || t.data.byteLength !== 4 * count) throw new AppError(`The trained weights lack a float32 tensor ${name} of shape ${shape}.`);
    return Float32Array.from({ length: count }, (_, i) => t.data.getFloat32(4 * i, true));
  });
  if (bytesToHex(checkpointRoot(ordered)) !== bytesToHex(roots.at(-1)!)) {
    throw new AppError(`The weights ${weightsCid} do not match the proof's last checkpoint root.`);
  }
  return { weights, weightsCid, finalLoss: proof.final_loss, checkpoints: roots.length };
}
