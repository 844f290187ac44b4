// Post a task (`dtm task post --dataset NAME` or `--data FILE`, with `--program net.json --weights
// init.safetensors` for your own model): the MLP preset, a model preset (each on its own built-in
// dataset) or your program on a built-in dataset or on your data. The browser checks the task,
// builds the artifacts and commitments, uploads them to the content store and escrows the payment
// in one transaction. Of your own data only the training rows are uploaded; the held-out rows are
// offered as a download when the task is posted. The price line shows the task's work and the
// payment recent tasks' rate suggests.
import { getBalance } from "viem/actions";
import { parseEther } from "viem";
import { commitments } from "../commit/task";
import presets from "../../presets.json";
import { clearNotice, h, notify } from "../dom";
import { AppError, describe } from "../errors";
import { eth } from "../format";
import type { Context, View } from "../context";
import { readDataset, upload, type Dataset, type Draft } from "../publish";
import type { LoadedData } from "../data";
import type { LoadedProgram, Rate } from "../program";

/** A bundle of its own next to app.js (webapp/build.mjs), loaded when first used. */
function lazy<T>(file: string): () => Promise<T> {
  let module: Promise<T> | null = null;
  return () => (module ??= import(/* @vite-ignore */ new URL(file, import.meta.url).href) as Promise<T>);
}
const dataModule = lazy<typeof import("../data")>("data.js");
const programModule = lazy<typeof import("../program")>("program.js");

/** A file's error (DataError, ProgramError: known by name, their classes live in other bundles) as
 *  one line for the page; other errors unchanged. */
function fileError(error: unknown): unknown {
  const { name, message } = error as Error;
  if (name !== "DataError" && name !== "ProgramError") return error;
  return new AppError(message.endsWith(".") ? message : `${message}.`);
}

const options = (values: readonly (string | number)[], chosen: string | number) =>
  values.map((v) => h("option", v === chosen ? { value: String(v), selected: true } : { value: String(v) }, String(v)));
const select = (id: string, values: readonly (string | number)[], chosen: string | number) =>
  h("select", { id }, ...options(values, chosen)) as HTMLSelectElement;
/** The model presets exported as programs, each trained on its own built-in dataset, with menus of
 *  model keywords and optimizer options (the first value of each the preset's own). */
const programPresets: Record<string, { about: string; dataset: string; menus: Record<string, (number | number[])[]> }> = presets.programs;
/** A menu value as the served files' names spell it (webapp.py `menu_token`): 16, 0.003, 4x16. */
const menuToken = (value: number | number[]) => (Array.isArray(value) ? value.join("x") : String(value));
const menuLabels: Record<string, string> = { dim: "width", layers: "blocks", widths: "channels", lr: "learning rate" };
const field = (id: string, value: string) => h("input", { type: "text", id, value }) as HTMLInputElement;
const row = (label: string, input: HTMLElement, unit = "") =>
  h("label", { class: "field" }, h("span", {}, label, unit && h("span", { class: "muted" }, ` (${unit})`)), input);

function integer(input: HTMLInputElement, what: string, low: number): number {
  const value = Number(input.value.trim());
  if (!Number.isSafeInteger(value) || value < low) throw new AppError(`${what} must be a whole number of at least ${low}, not "${input.value}".`);
  return value;
}
/** Offers `bytes` as a file download. */
function save(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes.slice()], { type: "application/octet-stream" }));
  const link = h("a", { href: url, download: name }) as HTMLAnchorElement;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
function ether(input: HTMLInputElement, what: string): bigint {
  try {
    return parseEther(input.value.trim());
  } catch {
    throw new AppError(`${what} "${input.value}" is not an amount of ether: enter a number such as 1.5.`);
  }
}

export function postPage(ctx: Context): View {
  const { wallet, market, config } = ctx;
  if (!wallet) {
    const el = h("section", {}, h("h1", {}, "Post a task"),
      h("p", { id: "post-needs-wallet" }, "Connect a wallet on a network the market is deployed on to post a task."));
    return { el, refresh: async () => {} };
  }
  const f = {
    model: select("post-model", ["MLP", ...Object.keys(presets.programs)], "MLP"),
    dataset: select("post-dataset", presets.mlp.datasets, "digits"),
    hidden: select("post-hidden", presets.mlp.hidden, 32),
    batch: select("post-batch", presets.mlp.batch_size, 32),
    k: select("post-k", presets.mlp.checkpoint_interval, 10),
    steps: field("post-steps", "300"), lr: field("post-lr", "0.1"), seed: field("post-seed", "1"),
    payment: field("post-payment", "1"), stake: field("post-stake", "1"),
    expires: field("post-expires", "3600"), window: field("post-window", "600"),
    file: h("input", { type: "file", id: "post-file", accept: ".csv,.npy,.npz,.safetensors" }) as HTMLInputElement,
    program: h("input", { type: "file", id: "post-program", accept: ".json" }) as HTMLInputElement,
    weights: h("input", { type: "file", id: "post-weights", accept: ".safetensors" }) as HTMLInputElement,
    label: field("post-label-column", ""), holdout: field("post-holdout", "0.1"),
  };
  /** Each program preset's menus (`post-GPT-dim`, …), shown while it is the chosen model. */
  const presetMenus = Object.entries(programPresets).flatMap(([name, preset]) => Object.entries(preset.menus).map(([key, values]) => {
    const input = select(`post-${name}-${key}`, values.map(menuToken), menuToken(values[0]));
    const shown = row(menuLabels[key] ?? key, input, `${name} preset`);
    shown.hidden = true;
    return { name, key, input, row: shown };
  }));
  const summary = h("p", { class: "muted", id: "post-data-summary" });
  const programSummary = h("p", { class: "muted", id: "post-program-summary" });
  const price = h("span", { id: "post-price" });
  const usePrice = h("button", { type: "button", id: "post-use-price", hidden: true }, "Use it") as HTMLButtonElement;
  const button = h("button", { type: "submit", id: "post" }, "Post and escrow the payment") as HTMLButtonElement;
  const progress = h("p", { class: "muted", id: "post-progress" });
  const form = h("form", { id: "post-form", class: "grid" },
    row("dataset", f.dataset), row("your own data", f.file, ".csv .npy .npz .safetensors"),
    row("label column", f.label, "name or index; default the last"), row("held out", f.holdout, "share of rows"),
    row("model", f.model, "a preset, unless you choose your program"),
    row("your program", f.program, "net.json of dtm model export"), row("its initial weights", f.weights, "init.safetensors"),
    row("hidden units", f.hidden), row("batch size", f.batch), ...presetMenus.map((menu) => menu.row),
    row("checkpoint every", f.k, "steps"),
    row("steps", f.steps), row("learning rate", f.lr), row("seed", f.seed, "batch order"),
    row("payment", f.payment, "ETH"), row("solver stake", f.stake, "ETH"),
    row("open for", f.expires, "s"), row("train window", f.window, "s"), button);

  /** The chosen file read as `load_dataset` reads it (the split is drawn with the seed). */
  async function ownData(): Promise<LoadedData | null> {
    const file = f.file.files?.[0];
    if (!file) return null;
    const holdout = Number(f.holdout.value.trim());
    if (f.holdout.value.trim() === "" || !(holdout >= 0 && holdout < 1)) {
      throw new AppError(`The held-out share must be a number in [0, 1), not "${f.holdout.value}".`);
    }
    const labelColumn = f.label.value.trim() === "" ? undefined : f.label.value.trim();
    const { loadDataset } = await dataModule();
    const seed = integer(f.seed, "The seed", 0);
    const limit = 256 * 1024 * 1024; // data.ts MAX_DATA_BYTES, checked before the file is read
    if (file.size > limit) throw new AppError(`${file.name}: file is ${file.size} bytes, limit ${limit}.`);
    try {
      return await loadDataset(file.name, new Uint8Array(await file.arrayBuffer()), { labelColumn, holdout, seed });
    } catch (error) {
      throw fileError(error);
    }
  }
  /** Your program and its initial weights, checked as `dtm task post --program` checks them. */
  async function ownProgram(): Promise<LoadedProgram | null> {
    const [program, weights] = [f.program.files?.[0], f.weights.files?.[0]];
    if (!program && !weights) return null;
    if (!program || !weights) {
      throw new AppError("A program and its initial weights go together: choose both files (`dtm model export --out net.json --weights-out init.safetensors`).");
    }
    const { loadProgram } = await programModule();
    const bytes = async (file: File) => new Uint8Array(await file.arrayBuffer());
    try {
      return loadProgram(await bytes(program), await bytes(weights), { program: program.name, weights: weights.name });
    } catch (error) {
      throw fileError(error);
    }
  }
  const programs = new Map<string, Promise<LoadedProgram>>();
  /** A model preset exported as a program, as served next to the app: a program preset with its
   *  menus' choices, the files `dtm model export` writes for it (`presets/GPT-dim16-layers2-lr0.003.json`,
   *  …), or the MLP sized by the data, the program `dtm task post` makes (`presets/MLP-input64-hidden32-classes10-batch32-lr0.1.json`). */
  async function presetProgram(name: string): Promise<LoadedProgram> {
    const stem = name === "MLP" ? await mlpStem()
      : name + presetMenus.filter((menu) => menu.name === name).map(({ key, input }) => `-${key}${input.value}`).join("");
    if (!programs.has(stem)) {
      const file = async (suffix: string) => {
        const response = await fetch(`presets/${stem}.${suffix}`);
        if (!response.ok) throw new AppError(`The ${name} preset is not served here (HTTP ${response.status}): serve the app with \`dtm node up\`.`);
        return new Uint8Array(await response.arrayBuffer());
      };
      const loading = Promise.all([programModule(), file("json"), file("safetensors")]).then(([{ loadProgram }, program, weights]) =>
        loadProgram(program, weights, { program: `${stem}.json`, weights: `${stem}.safetensors` }));
      loading.catch(() => programs.delete(stem));
      programs.set(stem, loading);
    }
    return programs.get(stem)!;
  }
  /** The MLP preset's name: the data's features and classes, the hidden units, batch size and learning rate. */
  async function mlpStem(): Promise<string> {
    const lr = Number(f.lr.value.trim());
    if (!(lr > 0 && lr <= 10)) throw new AppError(`The learning rate must be a number in (0, 10], not "${f.lr.value}".`);
    const { data, classes } = await chosenData();
    return `MLP-input${data.dim}-hidden${f.hidden.value}-classes${classes}-batch${f.batch.value}-lr${lr}`;
  }
  /** The built-in datasets the chosen model trains on: any for your program, else the preset's. */
  function offeredDatasets(): string[] {
    if (f.program.files?.length) return Object.keys(presets.datasets);
    return f.model.value === "MLP" ? presets.mlp.datasets : [programPresets[f.model.value].dataset];
  }
  /** The program to train: your files, else a preset's (the MLP's sized by the data). */
  async function chosenProgram(): Promise<LoadedProgram> {
    if (f.program.files?.length || f.weights.files?.length) return (await ownProgram())!;
    return presetProgram(f.model.value);
  }
  /** `check_program_task` (program.js is loaded once a program is). */
  const checkProgram = (program: LoadedProgram, data: Dataset, k: number) => programModule().then(({ checkProgramTask }) => {
    try {
      checkProgramTask(program, data, k);
    } catch (error) {
      throw fileError(error);
    }
  });
  const datasets = new Map<string, Promise<Dataset>>();
  /** A built-in dataset, the bytes the CLI publishes (served next to the app). */
  function builtIn(name: string): Promise<Dataset> {
    if (!datasets.has(name)) {
      const loading = fetch(`datasets/${name}.safetensors`).then(async (response) => {
        if (!response.ok) throw new AppError(`The built-in dataset ${name} is not served here (HTTP ${response.status}): serve the app with \`dtm node up\`.`);
        return readDataset(new Uint8Array(await response.arrayBuffer()), `dataset ${name}`);
      });
      loading.catch(() => datasets.delete(name));
      datasets.set(name, loading);
    }
    return datasets.get(name)!;
  }
  /** The chosen data: its training rows, the model's classes, your file as read. */
  async function chosenData(): Promise<{ data: Dataset; classes: number; own: LoadedData | null }> {
    const own = await ownData();
    if (own) return { data: own.train, classes: own.numClasses, own };
    const data = await builtIn(f.dataset.value);
    return { data, classes: data.classes, own };
  }

  let rate: Promise<Rate | null> | null = null, pricing = 0;
  /** The price line: the task's work, and the payment recent tasks' rate suggests (the latest
   *  call's: an earlier one still computing does not overwrite it). */
  async function showPrice(): Promise<void> {
    const call = ++pricing;
    try {
      const steps = integer(f.steps, "Steps", 1);
      const program = await chosenProgram();
      const { work, recentRate, priceLine } = await programModule();
      const flops = work(program.program).flops;
      if (config.ipfsApi) rate ??= recentRate(market, config.ipfsApi).catch(() => null);
      const [line, suggested] = priceLine(flops, steps, rate ? await rate : null);
      if (call !== pricing) return;
      price.textContent = line;
      usePrice.hidden = !suggested;
      usePrice.onclick = () => { f.payment.value = suggested ?? f.payment.value; };
    } catch {
      if (call !== pricing) return;
      price.textContent = "The price shows once the model, the data and the steps are valid.";
      usePrice.hidden = true;
    }
  }
  let previewing = 0;
  /** The data and program lines (the latest call's, as the price line). */
  async function preview(): Promise<void> {
    const call = ++previewing;
    clearNotice();
    f.dataset.disabled = Boolean(f.file.files?.length);
    // a program fixes its own model, batch size and optimizer
    const own = Boolean(f.program.files?.length);
    f.model.disabled = own;
    const offered = offeredDatasets();
    if (offered.join() !== [...f.dataset.options].map((o) => o.value).join()) f.dataset.replaceChildren(...options(offered, f.dataset.value));
    for (const input of [f.hidden, f.batch, f.lr]) input.disabled = own || f.model.value !== "MLP";
    for (const menu of presetMenus) menu.row.hidden = own || f.model.value !== menu.name;
    let dataLine = "", programLine = ""; // shown once known: the form does not jump while it is read
    try {
      const loaded = await ownData();
      if (loaded) dataLine = `${loaded.description}. The held-out rows stay in this browser: they download as a file when you post.`;
      const chosen = own ? f.weights.files?.length : f.model.value !== "MLP";
      const program = chosen ? await chosenProgram() : null;
      if (program) {
        const name = own ? f.program.files![0].name : `the ${f.model.value} preset`;
        programLine = `${name}: ${program.description}.`;
        await checkProgram(program, (await chosenData()).data, Number(f.k.value));
      }
    } catch (error) {
      if (call === previewing) notify(describe(error, "Reading your files"));
    }
    if (call !== previewing) return;
    [summary.textContent, programSummary.textContent] = [dataLine, programLine];
    await showPrice();
  }
  for (const input of [f.file, f.label, f.holdout, f.seed, f.model, f.program, f.weights, f.k, ...presetMenus.map((menu) => menu.input)]) input.addEventListener("change", () => void preview());
  // only the price follows these (no notice cleared: the form must not move under a click)
  for (const input of [f.dataset, f.hidden, f.batch, f.steps]) input.addEventListener("change", () => void showPrice());

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void post();
  });

  async function post(): Promise<void> {
    button.disabled = true;
    clearNotice();
    try {
      if (!config.ipfsApi) throw new AppError("This app was given no content store (ipfs_api in config.json): serve it with `dtm node up`.");
      const k = Number(f.k.value), steps = integer(f.steps, "Steps", 1);
      if (steps % k) throw new AppError(`Steps must be a multiple of the checkpoint interval ${k}: try ${Math.ceil(steps / k) * k}.`);
      const program = await chosenProgram();
      const options = { k, steps, seed: integer(f.seed, "The seed", 0) };
      const payment = ether(f.payment, "The payment"), stake = ether(f.stake, "The solver stake");
      const expiresIn = integer(f.expires, "Open for", 1), trainWindow = integer(f.window, "The train window", 1);

      // in the CLI's order: the task itself, the chain, then the uploads; the escrow last
      progress.textContent = "Computing the task's commitments…";
      const { data, own } = await chosenData();
      await checkProgram(program, data, k);
      const draft: Draft = (await programModule()).draftProgramTask(program, data, options);
      const terms = await market.terms();
      if (payment < terms.min_payment) throw new AppError(`The payment is below the market's minimum of ${eth(terms.min_payment)}.`);
      if (stake < terms.min_solver_stake) throw new AppError(`The solver stake is below the market's minimum of ${eth(terms.min_solver_stake)}.`);
      const funds = await getBalance(market.client, { address: wallet!.account });
      if (funds < payment) throw new AppError(`Your account holds ${eth(funds)}; the payment needs ${eth(payment)} plus gas: fund it first.`);

      progress.textContent = `Uploading to the content store at ${config.ipfsApi}…`;
      const specCid = await upload(config.ipfsApi, draft);
      progress.textContent = "Waiting for your wallet to sign the escrow…";
      const expires = BigInt((await market.now()) + expiresIn);
      const id = await market.createTask(wallet!, specCid, commitments(draft.task), stake, expires, BigInt(trainWindow), payment);
      progress.textContent = "";
      const kept = own?.holdout ? ` Its ${own.holdout.rows} held-out rows were not uploaded: they download as ${specCid}.safetensors (put it in $DTM_HOME/holdout/ for \`dtm task result\` to score the result).` : "";
      if (own?.holdout) save(own.holdout.bytes, `${specCid}.safetensors`);
      location.hash = `#/task/${id}`;
      notify(`Posted task ${id} (spec ${specCid}); ${eth(payment)} is in escrow.${kept}`, "info");
    } catch (error) {
      progress.textContent = "";
      notify(describe(error, "Posting the task"));
    } finally {
      button.disabled = false;
    }
  }

  const el = h("section", {}, h("h1", {}, "Post a task"),
    h("p", { class: "muted" }, "A model (the MLP preset: one hidden layer, trained with SGD; the CNN preset; the GPT preset, a small language model on the text; or your own PyTorch model as " +
      "`dtm model export` writes it, with its initial weights) trained on a built-in dataset or on your own file. " +
      "Its artifacts go to the content store and the payment into escrow, in one transaction. Of your own data, a seeded share of the rows " +
      "is held out: never uploaded, it is yours to score the result with."), form, summary, programSummary,
    h("p", { class: "muted", id: "post-price-line" }, price, " ", usePrice),
    h("p", { class: "muted" }, ...Object.entries(presets.datasets).map(([name, about]) => `${name}: ${about}. `),
      ...Object.entries(programPresets).map(([name, preset]) => `${name}: ${preset.about}. `)), progress);
  void showPrice();
  return { el, refresh: async () => {} };
}
