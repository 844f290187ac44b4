// A dataset in the committed format, and a task's artifacts and spec (program.ts
// `draftProgramTask`) uploaded to the content store.
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

/** A task's artifacts by what they are, and its spec. */
export interface Draft { artifacts: Record<string, Uint8Array>; task: TrainingTask }

/** Uploads every artifact, then the task spec; returns the spec's CID. */
export async function upload(api: string, draft: Draft): Promise<string> {
  for (const [what, bytes] of Object.entries(draft.artifacts)) await add(api, bytes, what);
  return add(api, taskBytes(draft.task), "task spec");
}
