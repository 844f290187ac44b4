// Post a task (`dtm task post --dataset NAME`, or `--data FILE` with your own file): the MLP preset
// on a built-in dataset or on your data. The browser builds the artifacts and commitments, uploads
// them to the content store and escrows the payment in one transaction. Of your own data only the
// training rows are uploaded; the held-out rows are offered as a download when the task is posted.
import { getBalance } from "viem/actions";
import { parseEther } from "viem";
import { commitments } from "../commit/task";
import presets from "../../presets.json";
import { clearNotice, h, notify } from "../dom";
import { AppError, describe } from "../errors";
import { eth } from "../format";
import type { Context, View } from "../context";
import { draftTask, readDataset, unjudgeable, upload, type Dataset } from "../publish";
import type { LoadedData } from "../data";

const select = (id: string, values: readonly (string | number)[], chosen: string | number) =>
  h("select", { id }, ...values.map((v) => h("option", v === chosen ? { value: String(v), selected: true } : { value: String(v) }, String(v)))) as HTMLSelectElement;
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
    dataset: select("post-dataset", Object.keys(presets.datasets), "digits"),
    hidden: select("post-hidden", presets.mlp.hidden, 32),
    batch: select("post-batch", presets.mlp.batch_size, 32),
    k: select("post-k", presets.mlp.checkpoint_interval, 10),
    steps: field("post-steps", "300"), lr: field("post-lr", "0.1"), seed: field("post-seed", "1"),
    payment: field("post-payment", "1"), stake: field("post-stake", "1"),
    expires: field("post-expires", "3600"), window: field("post-window", "600"),
    file: h("input", { type: "file", id: "post-file", accept: ".csv,.npy,.npz,.safetensors" }) as HTMLInputElement,
    label: field("post-label-column", ""), holdout: field("post-holdout", "0.1"),
  };
  const summary = h("p", { class: "muted", id: "post-data-summary" });
  const button = h("button", { type: "submit", id: "post" }, "Post and escrow the payment") as HTMLButtonElement;
  const progress = h("p", { class: "muted", id: "post-progress" });
  const form = h("form", { id: "post-form", class: "grid" },
    row("dataset", f.dataset), row("your own data", f.file, ".csv .npy .npz .safetensors"),
    row("label column", f.label, "name or index; default the last"), row("held out", f.holdout, "share of rows"),
    row("hidden units", f.hidden), row("batch size", f.batch), row("checkpoint every", f.k, "steps"),
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
    // data.js, a bundle of its own (webapp/build.mjs), loads when first used
    const reader = new URL("data.js", import.meta.url).href;
    const { loadDataset } = (await import(/* @vite-ignore */ reader)) as typeof import("../data");
    const seed = integer(f.seed, "The seed", 0);
    const limit = 256 * 1024 * 1024; // data.ts MAX_DATA_BYTES, checked before the file is read
    if (file.size > limit) throw new AppError(`${file.name}: file is ${file.size} bytes, limit ${limit}.`);
    try {
      return await loadDataset(file.name, new Uint8Array(await file.arrayBuffer()), { labelColumn, holdout, seed });
    } catch (error) {
      const message = (error as Error)?.message;
      if ((error as Error)?.name === "DataError") throw new AppError(message.endsWith(".") ? message : `${message}.`);
      throw error;
    }
  }
  async function preview(): Promise<void> {
    clearNotice();
    summary.textContent = "";
    f.dataset.disabled = Boolean(f.file.files?.length);
    try {
      const loaded = await ownData();
      if (loaded) summary.textContent = `${loaded.description}. The held-out rows stay in this browser: they download as a file when you post.`;
    } catch (error) {
      notify(describe(error, "Reading your data"));
    }
  }
  for (const input of [f.file, f.label, f.holdout, f.seed]) input.addEventListener("change", () => void preview());

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
      const lr = Number(f.lr.value.trim());
      if (!(lr > 0 && lr <= 10)) throw new AppError(`The learning rate must be a number in (0, 10], not "${f.lr.value}".`);
      const options = { hidden: Number(f.hidden.value), batchSize: Number(f.batch.value), k, steps, lr, seed: integer(f.seed, "The seed", 0) };
      const payment = ether(f.payment, "The payment"), stake = ether(f.stake, "The solver stake");
      const expiresIn = integer(f.expires, "Open for", 1), trainWindow = integer(f.window, "The train window", 1);

      const terms = await market.terms();
      if (payment < terms.min_payment) throw new AppError(`The payment is below the market's minimum of ${eth(terms.min_payment)}.`);
      if (stake < terms.min_solver_stake) throw new AppError(`The solver stake is below the market's minimum of ${eth(terms.min_solver_stake)}.`);
      const funds = await getBalance(market.client, { address: wallet!.account });
      if (funds < payment) throw new AppError(`Your account holds ${eth(funds)}; the payment needs ${eth(payment)} plus gas: fund it first.`);

      progress.textContent = "Computing the task's commitments…";
      const own = await ownData();
      let data: Dataset;
      if (own) data = own.train;
      else {
        const name = f.dataset.value;
        const response = await fetch(`datasets/${name}.safetensors`);
        if (!response.ok) throw new AppError(`The built-in dataset ${name} is not served here (HTTP ${response.status}): serve the app with \`dtm node up\`.`);
        data = readDataset(new Uint8Array(await response.arrayBuffer()), `dataset ${name}`);
      }
      const classes = own ? own.numClasses : data.classes;
      const refused = unjudgeable(data.dim, options, classes);
      if (refused) throw new AppError(`The dispute game could not judge this task: ${refused}.`);
      const draft = draftTask(data, options, classes);
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
    h("p", { class: "muted" }, "A classifier (the MLP preset: one hidden layer) trained with SGD on a built-in dataset or on your own file. " +
      "Its artifacts go to the content store and the payment into escrow, in one transaction. Of your own data, a seeded share of the rows " +
      "is held out: never uploaded, it is yours to score the result with."), form, summary,
    h("p", { class: "muted" }, ...Object.entries(presets.datasets).map(([name, about]) => `${name}: ${about}. `)), progress);
  return { el, refresh: async () => {} };
}
