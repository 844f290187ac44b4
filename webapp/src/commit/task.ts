// The task spec (`dtm-task/1`) and its commitments, byte for byte those of offchain/ml/task.py: the
// canonical JSON the spec CID names, and the spec hash the chain holds (keccak256 of the
// abi-encoded commitments).
import { encodeAbiParameters, keccak256, numberToHex, parseAbiParameters, stringToBytes, type Hex } from "viem";

export interface TrainingTask {
  model_cid: string;
  weights_cid: string;
  dataset_cid: string;
  weights_root: Hex;
  dataset_root: Hex;
  dataset_rows: number;
  lr: number;
  batch_size: number;
  steps: number;
  seed: bigint;
  checkpoint_interval: number;
  graph_root: Hex;
  /** The training program's whole optimizer config (`optimizerJson`) and the root of its hyper table. */
  program: { optimizer: Json; hyper_root: Hex };
}

export const COMMITMENT_TYPES = parseAbiParameters("bytes32, bytes32, bytes32, uint256, bytes32, uint256, uint256, uint256, uint256");

/** A float as Python's `repr` writes it (what `json.dumps` emits): "1.0", "0.1", "1e-05", "1e+16". */
export function pythonFloat(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`${value} has no JSON form`);
  const [mantissa, power] = value.toExponential().split("e"); // the shortest digits, as repr's
  const exponent = Number(power);
  if (value !== 0 && (exponent < -4 || exponent >= 16)) {
    return `${mantissa}e${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  const text = String(value);
  return text.includes(".") || text.includes("e") ? text : `${text}.0`;
}

/** Python's `round` (half to even). */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value), rest = value - floor;
  return rest > 0.5 ? floor + 1 : rest < 0.5 ? floor : floor % 2 === 0 ? floor : floor + 1;
}

/** Sorted keys, compact separators, UTF-8: `canonical_json` in offchain/ml/strict_json.py. Floats are
 *  marked by wrapping them in `{ float: x }`, as JavaScript has one number type; integers may be bigint. */
export type Json = string | number | bigint | boolean | null | { float: number } | Json[] | { [key: string]: Json };
export function canonicalJson(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    if ("float" in value && typeof value.float === "number" && Object.keys(value).length === 1) return pythonFloat(value.float);
    const entries = Object.entries(value as Record<string, Json>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  if (typeof value === "number" && !Number.isInteger(value)) throw new Error(`${value}: mark floats as { float }`);
  if (typeof value === "bigint") return value.toString();
  return JSON.stringify(value);
}

export function taskBytes(task: TrainingTask): Uint8Array {
  return stringToBytes(canonicalJson({
    format: "dtm-task/1",
    model_cid: task.model_cid,
    weights_cid: task.weights_cid,
    dataset_cid: task.dataset_cid,
    weights_root: task.weights_root,
    dataset_root: task.dataset_root,
    dataset_rows: task.dataset_rows,
    optimizer: task.program.optimizer,
    batch_size: task.batch_size,
    steps: task.steps,
    seed: numberToHex(task.seed, { size: 32 }),
    checkpoint_interval: task.checkpoint_interval,
    numeric: { dtype: "float32", accumulation: "any-order" },
    graph_root: task.graph_root,
    hyper_root: task.program.hyper_root,
  }));
}

/** The graph root the chain holds (`committed_graph_root`): keccak256(abi.encode(program root, hyper_root)). */
export const committedGraphRoot = (task: TrainingTask): Hex =>
  keccak256(encodeAbiParameters(parseAbiParameters("bytes32, bytes32"), [task.graph_root, task.program.hyper_root]));

/** What `create_task` takes, in `abi.encode` order (`TrainingTask.commitments`); `bytesHash` the
 *  keccak256 of the spec's bytes as published, when they are at hand. */
export function commitments(task: TrainingTask, bytesHash: Hex = keccak256(taskBytes(task))) {
  return [bytesHash, committedGraphRoot(task), task.dataset_root, BigInt(task.dataset_rows), task.weights_root,
    task.seed, BigInt(task.batch_size), BigInt(task.steps), BigInt(task.checkpoint_interval)] as const;
}

/** The spec hash the chain holds for the task. */
export const specHash = (task: TrainingTask, bytesHash?: Hex): Hex =>
  keccak256(encodeAbiParameters(COMMITMENT_TYPES, commitments(task, bytesHash)));
