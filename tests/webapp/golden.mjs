// The golden vectors of test_golden.py computed by the web app's TypeScript (webapp/src/commit,
// webapp/src/data.ts, webapp/src/result.ts), from the same input formulas and data files; prints them as JSON.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { webappModule } from "./webapp_module.mjs";

const FILE_SIZES = [0, 1, 1000, 262_144, 262_145, 174 * 262_144 + 1];
const TENSOR_SIZES = [1, 10, 512, 513, 1500];
const DATASETS = [[1, 5], [3, 5], [100, 7]];
const MODELS = [[4, [3], 2, 8, 0.1, 0], [64, [32], 10, 32, 0.1, 0], [16, [8, 8], 4, 5, 0.03, 7], [3, [], 2, 1, 1e-5, 2 ** 40 + 3]];
const LRS = [0.1, 1.0, 1e-5, 0.0003, 0.0001, 7.5e-7, 2.5, 10];
const LOSS_ROWS = 50;
const CURVES = [[1, 50], [2, 50], [5, 50], [4, 3], [10, 4], [51, 50], [101, 50], [1001, 50]];

const dir = mkdtempSync(join(tmpdir(), "golden-"));
const outfile = join(dir, "commit.mjs");
await esbuild.build({ stdin: {
  contents: 'export * from "./cid"; export * from "./merkle"; export * from "./task"; export { saveTensors } from "../safetensors"; export { OPS, nodesRoot, optimizerJson, outputsHash, parseProgram, programRoot, hyperRoot } from "./program"; export { loadDataset } from "../data"; export { curveIndices, meanLoss, programLayout, readTensors, readRows } from "../result"; export { bytesToHex, keccak256, stringToBytes } from "viem";',
  resolveDir: new URL("../../webapp/src/commit", import.meta.url).pathname, loader: "ts",
}, bundle: true, format: "esm", platform: "node", outfile, logLevel: "warning" });
const c = await import(outfile);
rmSync(dir, { recursive: true });

const fileBytes = (size) => Uint8Array.from({ length: size }, (_, i) => (i * 7 + 3) % 251);
const tensor = (size) => Float32Array.from({ length: size }, (_, i) => (i % 97) * 0.125 - 6);
const hex = (bytes) => c.bytesToHex(bytes);
// the Python side keys tasks by repr(lr)
const repr = (lr) => c.pythonFloat(lr);
const hash = (text) => c.keccak256(c.stringToBytes(text));

const task = (lr) => ({
  model_cid: "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
  weights_cid: "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
  dataset_cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
  weights_root: hash("weights"), dataset_root: hash("dataset"), dataset_rows: 1797,
  lr, batch_size: 32, steps: 300, seed: 2n ** 255n + 12345n, checkpoint_interval: 10, graph_root: hash("graph"),
  // the optimizer config as Python writes it (its floats marked for the canonical JSON)
  program: { optimizer: c.optimizerJson(golden.task[repr(lr)].optimizer), hyper_root: hash("hyper") },
});

// the data files are inputs the golden file carries (base64)
const golden = JSON.parse(readFileSync(new URL("../golden/commitments.json", import.meta.url), "utf8"));
async function loaded(name, file, options) {
  let got;
  try {
    got = await c.loadDataset(name, Buffer.from(file, "base64"), { labelColumn: options.label_column, holdout: options.holdout, seed: options.seed });
  } catch (error) {
    if (error.name !== "DataError") throw error;
    return { error: error.message };
  }
  const held = got.holdout;
  return { description: got.description, classes: got.numClasses, train_rows: got.train.rows,
    dataset_root: hex(c.datasetRoot(got.train.x, got.train.y, got.train.dim)), dataset_cid: c.computeCid(got.train.bytes),
    holdout_rows: held ? held.rows : 0, holdout_cid: held ? c.computeCid(held.bytes) : null };
}
const data = {}, dataErrors = {};
for (const [name, { file, options }] of Object.entries(golden.data)) data[name] = { file, options, ...(await loaded(name, file, options)) };
for (const [name, { file }] of Object.entries(golden.data_errors)) dataErrors[name] = { file, ...(await loaded(name, file, {})) };

// training programs: the files are inputs the golden file carries; the data is `dataset(rows, dim)`
const { loadProgram, draftProgramTask, unjudgeableProgram, work } = await webappModule("program.ts");
const { readDataset } = await webappModule("publish.ts");
const dataset = (rows, dim) => readDataset(c.saveTensors({
  x: { dtype: "F32", shape: [rows, dim], data: Float32Array.from({ length: rows * dim }, (_, i) => (i % 13) / 8 - 0.5) },
  y: { dtype: "I64", shape: [rows], data: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % 4)) } }), "dataset");
const programs = {};
for (const [name, v] of Object.entries(golden.programs)) {
  const loaded = loadProgram(Buffer.from(v.program, "base64"), Buffer.from(v.weights, "base64"));
  const data = dataset(v.rows, loaded.program.nodes.find((n) => n.op === "data_x").shape[1]);
  const { task } = draftProgramTask(loaded, data, { steps: v.steps, k: v.k, seed: BigInt(v.seed) });
  const w = work(loaded.program);
  programs[name] = { program: v.program, weights: v.weights, rows: v.rows, steps: v.steps, k: v.k, seed: v.seed,
    nodes_root: hex(c.nodesRoot(loaded.program)), outputs_hash: hex(c.outputsHash(loaded.program)), root: task.graph_root,
    hyper_root: task.program.hyper_root, committed_graph_root: c.committedGraphRoot(task), weights_root: task.weights_root,
    model_cid: task.model_cid, weights_cid: task.weights_cid, dataset_cid: task.dataset_cid,
    spec: new TextDecoder().decode(c.taskBytes(task)), spec_hash: c.specHash(task),
    flops: String(w.flops), bytes: String(w.bytes), nodes: w.nodes, unjudgeable: unjudgeableProgram(loaded.program, v.k) };
}

const vectors = {
  cid: Object.fromEntries(FILE_SIZES.map((size) => [String(size), c.computeCid(fileBytes(size))])),
  tensor_root: Object.fromEntries(TENSOR_SIZES.map((size) => [String(size), hex(c.tensorRoot(tensor(size)))])),
  checkpoint_root: hex(c.checkpointRoot(TENSOR_SIZES.map(tensor))),
  dataset_root: Object.fromEntries(DATASETS.map(([rows, dim]) => {
    const x = Float32Array.from({ length: rows * dim }, (_, i) => (i % 13) / 8 - 0.5);
    const y = BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % 4));
    return [`${rows}x${dim}`, hex(c.datasetRoot(x, y, dim))];
  })),
  // the preset's initial weights read as a checkpoint, the rows as a task's dataset, as the task page reads them
  presets: golden.presets,
  loss: golden.presets.map(({ program, weights }, i) => {
    const [inputDim, , classes] = MODELS[i];
    const layout = c.programLayout(c.parseProgram(Buffer.from(program, "base64")), inputDim);
    const params = c.readTensors(Buffer.from(weights, "base64"), layout, "checkpoint");
    const x = Float32Array.from({ length: LOSS_ROWS * inputDim }, (_, i) => ((i % 13) / 8 - 0.5) * 8);
    const y = BigInt64Array.from({ length: LOSS_ROWS }, (_, i) => BigInt(i % classes));
    const bytes = c.saveTensors({ x: { dtype: "F32", shape: [LOSS_ROWS, inputDim], data: x }, y: { dtype: "I64", shape: [LOSS_ROWS], data: y } });
    const task_ = { dataset_cid: "rows", dataset_rows: LOSS_ROWS, dataset_root: hex(c.datasetRoot(x, y, inputDim)) };
    const { model, params: indices } = layout.mlp;
    return c.meanLoss(model, indices.map((j) => params[j]), c.readRows(bytes, task_, model));
  }),
  curve_indices: Object.fromEntries(CURVES.map(([count, points]) => [`${count}/${points}`, c.curveIndices(count, points)])),
  task: Object.fromEntries(LRS.map((lr) => [repr(lr), {
    optimizer: golden.task[repr(lr)].optimizer, // an input, as the presets are
    bytes: new TextDecoder().decode(c.taskBytes(task(lr))), spec_hash: c.specHash(task(lr)),
  }])),
  data,
  data_errors: dataErrors,
  ops: Object.fromEntries([...c.OPS].map(([name, [code]]) => [name, code])),
  programs,
};
console.log(JSON.stringify(vectors));
