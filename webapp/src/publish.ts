// A task built in the browser from a preset and a dataset, with the commitments
// offchain/workers/artifacts.py `publish_task` computes, uploaded to the content store.
import { bytesToHex } from "viem";
import { computeCid } from "./commit/cid";
import { datasetRoot } from "./commit/merkle";
import { graphRoot, initWeights, mlpSpec, specBytes, weightsBytes, weightsRoot } from "./commit/model";
import { taskBytes, type TrainingTask } from "./commit/task";
import { AppError } from "./errors";
import { add } from "./store";

export interface Dataset { bytes: Uint8Array; x: Float32Array; y: BigInt64Array; rows: number; dim: number; classes: number }

/** A dataset in the committed format (safetensors `x` float32 (rows, D), `y` int64 (rows,)). */
export function readDataset(bytes: Uint8Array, what: string): Dataset {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };
  let header: Record<string, Entry>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    throw new AppError(`${what} is not a safetensors file.`);
  }
  const { x: xs, y: ys } = header;
  if (xs?.dtype !== "F32" || xs.shape.length !== 2 || ys?.dtype !== "I64" || ys.shape[0] !== xs.shape[0]) {
    throw new AppError(`${what} must hold x (float32, rows × features) and y (int64 labels, one per row).`);
  }
  const body = 8 + headerLength;
  const [rows, dim] = xs.shape;
  const x = Float32Array.from({ length: rows * dim }, (_, i) => view.getFloat32(body + xs.data_offsets[0] + 4 * i, true));
  const y = BigInt64Array.from({ length: rows }, (_, i) => view.getBigInt64(body + ys.data_offsets[0] + 8 * i, true));
  const classes = Number(y.reduce((a, b) => (b > a ? b : a), 0n)) + 1;
  return { bytes, x, y, rows, dim, classes };
}

export interface Options { hidden: number; steps: number; k: number; batchSize: number; lr: number; seed: number }

const LEAF_FLOATS = 512, MAX_OPEN_LEAVES = 16; // offchain/ml/commit.py LEAF_BYTES / 4, dispute/moves.py

/** Why the dispute game could not judge the MLP preset on rows of `dim` features, or null: the
 *  limit of offchain/dispute/limits.py this preset can reach (a column of a layer of width w, read
 *  across a batch, must lie in at most 16 tensor leaves), taken over every column offset;
 *  tests/webapp/test_golden.py compares the verdict with `check_task`'s. */
export function unjudgeable(dim: number, o: Options, classes: number): string | null {
  for (const [width, what] of [[dim, `rows of ${dim} features`], [o.hidden, `${o.hidden} hidden units`], [classes, `${classes} classes`]] as const) {
    let leaves = 0;
    for (let start = 0; start < Math.min(width, LEAF_FLOATS) && leaves <= MAX_OPEN_LEAVES; start++) {
      leaves = Math.max(leaves, new Set(Array.from({ length: o.batchSize }, (_, t) => Math.floor((start + t * width) / LEAF_FLOATS))).size);
    }
    if (leaves > MAX_OPEN_LEAVES) {
      return `with ${what}, batch size ${o.batchSize} reads a column across ${leaves} tensor leaves and the dispute game opens at most ${MAX_OPEN_LEAVES}: choose a smaller batch size`;
    }
  }
  return null;
}

/** The artifacts and the task spec (`make_task` with the MLP preset, initial weights of seed 0);
 *  `classes` the model's outputs (the data's max label + 1 unless given). */
export function draftTask(data: Dataset, o: Options, classes = data.classes) {
  const spec = mlpSpec(data.dim, [o.hidden], classes);
  const weights = initWeights(spec, 0);
  const artifacts = { "model spec": specBytes(spec), "initial weights": weightsBytes(spec, weights), dataset: data.bytes };
  const task: TrainingTask = {
    model_cid: computeCid(artifacts["model spec"]),
    weights_cid: computeCid(artifacts["initial weights"]),
    dataset_cid: computeCid(data.bytes),
    weights_root: bytesToHex(weightsRoot(weights)),
    dataset_root: bytesToHex(datasetRoot(data.x, data.y, data.dim)),
    dataset_rows: data.rows,
    lr: o.lr, batch_size: o.batchSize, steps: o.steps, seed: BigInt(o.seed), checkpoint_interval: o.k,
    graph_root: bytesToHex(graphRoot(spec, o.batchSize, o.lr)),
  };
  return { artifacts, task };
}

/** A task's artifacts by what they are, and its spec. */
export interface Draft { artifacts: Record<string, Uint8Array>; task: TrainingTask }

/** Uploads every artifact, then the task spec; returns the spec's CID. */
export async function upload(api: string, draft: Draft): Promise<string> {
  for (const [what, bytes] of Object.entries(draft.artifacts)) await add(api, bytes, what);
  return add(api, taskBytes(draft.task), "task spec");
}
