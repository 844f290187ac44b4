// A program task (`dtm task post --program net.json --weights init.safetensors`) built in the page
// exactly as offchain/workers/artifacts.py `publish_program_task` builds it, and the price of a task
// (webapp/src/price.ts). A bundle of its own (program.js, webapp/build.mjs), which the post page
// loads when it opens.
import { bytesToHex } from "viem";
import { computeCid } from "./commit/cid";
import { checkpointRoot, datasetRoot } from "./commit/merkle";
import { saveTensors, type Tensor } from "./safetensors";
import {
  batchSize, checkOptimizer, hyperRoot, inputWidth, optimizerJson, parseOptimizer, parseProgram, programRoot,
  ProgramError, unjudgeableProgram, work, type Optimizer, type Program,
} from "./commit/program";
import type { TrainingTask } from "./commit/task";
import { readSafetensors } from "./data";
import { flopsText } from "./price";
import type { Dataset } from "./publish";

export { ProgramError, unjudgeableProgram, work };
export { priceLine, recentRate, type Rate } from "./price";

export interface LoadedProgram { program: Program; optimizer: Optimizer; weights: Map<string, Float32Array>; description: string }

/** `initial_weights`: exactly the program's parameters (and running statistics), float32, of their
 *  shapes, finite. */
function initialWeights(program: Program, bytes: Uint8Array): Map<string, Float32Array> {
  const fail = (why: string): never => { throw new ProgramError(why); };
  const tensors = readSafetensors(fail, bytes);
  const expected = new Map(program.state.filter((s) => s.kind !== "buffer").map((s) => [s.name, s.shape]));
  const missing = [...expected.keys()].filter((n) => !tensors.has(n)).sort(), unknown = [...tensors.keys()].filter((n) => !expected.has(n)).sort();
  if (missing.length) fail(`the program's parameter(s) ${missing.join(", ")} are missing`);
  if (unknown.length) fail(`tensor(s) ${unknown.join(", ")} are not the program's`);
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of expected) {
    const tensor = tensors.get(name)!;
    if (tensor.dtype !== "float32") fail(`tensor ${name} is ${tensor.dtype}, not float32`);
    if (tensor.shape.join() !== shape.join()) fail(`tensor ${name} has shape [${tensor.shape}]; the program's state needs [${shape}]`);
    const data = tensor.data as Float32Array;
    if (!data.every(Number.isFinite)) fail(`tensor ${name} contains NaN or infinity`);
    weights.set(name, data);
  }
  return weights;
}

/** The program, the optimizer its meta names and the initial weights, checked as `dtm task post
 *  --program` checks them; throws a ProgramError naming the first problem. */
export function loadProgram(programBytes: Uint8Array, weightsBytes: Uint8Array,
  names = { program: "the program", weights: "the weights file" }): LoadedProgram {
  const named = <T>(name: string, read: () => T): T => {
    try {
      return read();
    } catch (error) {
      throw error instanceof ProgramError ? new ProgramError(`${name}: ${error.message}`) : error;
    }
  };
  const [program, optimizer] = named(names.program, () => {
    const parsed = parseProgram(programBytes), config = parseOptimizer(parsed.meta.optimizer);
    checkOptimizer(parsed, config);
    return [parsed, config] as const;
  });
  const weights = named(names.weights, () => initialWeights(program, weightsBytes));
  const { flops, nodes } = work(program);
  const params = program.state.filter((s) => s.kind === "param").reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  const description = `${params.toLocaleString("en-US")} parameters, ${nodes} nodes, ${flopsText(Number(flops))} per step; ` +
    `batches of ${batchSize(program)} rows of ${inputWidth(program)} ${program.meta.loss === "lm_cross_entropy" ? "tokens" : "features"}; ` +
    `${optimizer.name}, lr ${optimizer.lr}`;
  return { program, optimizer, weights, description };
}

export interface ProgramOptions { steps: number; k: number; seed: number | bigint }

/** `check_program_task`: the data fits the program's input, and the dispute game can judge the
 *  task (as far as the page checks it: commit/program.ts `unjudgeableProgram`). */
export function checkProgramTask({ program }: LoadedProgram, data: Dataset, checkpointInterval: number): void {
  if (data.dim !== inputWidth(program)) throw new ProgramError(`The data has ${data.dim} features a row; the program takes ${inputWidth(program)}`);
  const refused = unjudgeableProgram(program, checkpointInterval);
  if (refused) throw new ProgramError(`The dispute game cannot judge this task: ${refused}`);
}

/** `program_task`: the artifacts and the task spec. */
export function draftProgramTask(loaded: LoadedProgram, data: Dataset, o: ProgramOptions) {
  const { program, optimizer, weights } = loaded;
  // checkpoint 0: the weights, then zero optimizer buffers
  const state = program.state.map((s): [string, Tensor] =>
    [s.name, { dtype: "F32", shape: s.shape, data: weights.get(s.name) ?? new Float32Array(s.shape.reduce((a, b) => a * b, 1)) }]);
  const artifacts = { program: program.bytes, "initial weights": saveTensors(Object.fromEntries(state)), dataset: data.bytes };
  const task: TrainingTask = {
    model_cid: computeCid(artifacts.program),
    weights_cid: computeCid(artifacts["initial weights"]),
    dataset_cid: computeCid(data.bytes),
    weights_root: bytesToHex(checkpointRoot(state.map(([, t]) => t.data as Float32Array))),
    dataset_root: bytesToHex(datasetRoot(data.x, data.y, data.dim)),
    dataset_rows: data.rows,
    lr: optimizer.lr, batch_size: batchSize(program), steps: o.steps, seed: BigInt(o.seed), checkpoint_interval: o.k,
    graph_root: bytesToHex(programRoot(program)),
    program: { optimizer: optimizerJson(optimizer), hyper_root: bytesToHex(hyperRoot(optimizer, o.steps)) },
  };
  return { artifacts, task };
}
