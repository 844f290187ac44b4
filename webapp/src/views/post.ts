// Post a task (`dtm task post --dataset NAME`): the MLP preset on a built-in dataset. The browser
// builds the artifacts and commitments, uploads them to the content store and escrows the payment
// in one transaction.
import { getBalance } from "viem/actions";
import { parseEther } from "viem";
import { commitments } from "../commit/task";
import presets from "../../presets.json";
import { clearNotice, h, notify } from "../dom";
import { AppError, describe } from "../errors";
import { eth } from "../format";
import type { Context, View } from "../context";
import { draftTask, readDataset, upload } from "../publish";

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
  };
  const button = h("button", { type: "submit", id: "post" }, "Post and escrow the payment") as HTMLButtonElement;
  const progress = h("p", { class: "muted", id: "post-progress" });
  const form = h("form", { id: "post-form", class: "grid" },
    row("dataset", f.dataset),
    row("hidden units", f.hidden), row("batch size", f.batch), row("checkpoint every", f.k, "steps"),
    row("steps", f.steps), row("learning rate", f.lr), row("seed", f.seed, "batch order"),
    row("payment", f.payment, "ETH"), row("solver stake", f.stake, "ETH"),
    row("open for", f.expires, "s"), row("train window", f.window, "s"), button);

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
      const name = f.dataset.value;
      const response = await fetch(`datasets/${name}.safetensors`);
      if (!response.ok) throw new AppError(`The built-in dataset ${name} is not served here (HTTP ${response.status}): serve the app with \`dtm node up\`.`);
      const draft = draftTask(readDataset(new Uint8Array(await response.arrayBuffer()), `dataset ${name}`), options);
      progress.textContent = `Uploading to the content store at ${config.ipfsApi}…`;
      const specCid = await upload(config.ipfsApi, draft);
      progress.textContent = "Waiting for your wallet to sign the escrow…";
      const expires = BigInt((await market.now()) + expiresIn);
      const id = await market.createTask(wallet!, specCid, commitments(draft.task), stake, expires, BigInt(trainWindow), payment);
      progress.textContent = "";
      location.hash = `#/task/${id}`;
      notify(`Posted task ${id} (spec ${specCid}); ${eth(payment)} is in escrow.`, "info");
    } catch (error) {
      progress.textContent = "";
      notify(describe(error, "Posting the task"));
    } finally {
      button.disabled = false;
    }
  }

  const el = h("section", {}, h("h1", {}, "Post a task"),
    h("p", { class: "muted" }, "A classifier (the MLP preset: one hidden layer) trained with SGD on a built-in dataset. " +
      "Its artifacts go to the content store and the payment into escrow, in one transaction."), form,
    h("p", { class: "muted" }, ...Object.entries(presets.datasets).map(([name, about]) => `${name}: ${about}. `)), progress);
  return { el, refresh: async () => {} };
}
