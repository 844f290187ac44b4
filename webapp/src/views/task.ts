// One task (`dtm task status`): its state, the running deadline, what the chain holds, its timeline.
import type { Hex } from "viem";
import { duration, eth, ZERO_ADDRESS } from "../format";
import type { Context, View } from "../context";
import { stateName, TaskState, type TaskView } from "../market";
import { clearNotice, h, notify } from "../dom";
import { disputeLines } from "../dispute";
import { AppError, describe } from "../errors";
import type { Curve } from "../result";
import { act } from "./act";
import { setChainTime, taskDeadline } from "./countdown";

// result.js, a bundle of its own (webapp/build.mjs), loads when first used
const results = () => import(/* @vite-ignore */ new URL("result.js", import.meta.url).href) as Promise<typeof import("../result")>;

export function taskPage(ctx: Context, id: bigint): View {
  const head = h("div");
  const actions = h("div", { id: "task-actions" });
  const result = h("div", { id: "result" });
  const curve = h("div", { id: "curve" });
  const dispute = h("div", { id: "dispute" });
  const facts = h("tbody");
  const timeline = h("tbody");
  const el = h("section", {}, h("p", {}, h("a", { href: "#/" }, "← market")), head, dispute, actions, result,
    h("table", { id: "facts" }, facts), curve,
    h("h2", {}, "Timeline"),
    h("table", { id: "timeline" }, h("thead", {}, h("tr", {}, ...["block", "time", "event", "detail"].map((t) => h("th", {}, t)))), timeline));

  async function refresh(): Promise<void> {
    const { market } = ctx;
    const [task, rows, now] = await Promise.all([market.task(id), market.timeline(id), market.now()]);
    setChainTime(now);
    if (task.state === TaskState.NONE) {
      head.replaceChildren(h("h1", {}, `No task ${id}`), h("p", {}, "The market has no task with this number: pick one from the market's list."));
      return;
    }
    head.replaceChildren(
      h("h1", {}, `Task ${id}: `, h("span", { class: "state", id: "task-state" }, stateName(task.state))),
      h("p", { id: "task-deadline" }, taskDeadline(task) ?? ""),
    );
    dispute.replaceChildren(...(task.state === TaskState.DISPUTED ? await disputeView(task.dispute_id, now) : []));
    actions.replaceChildren(...taskActions(task, now));
    if (task.state === TaskState.FINALISED && !result.childElementCount) result.replaceChildren(resultButton());
    if (!/^0x0+$/.test(task.proof_root)) showCurve(task.proof_root);
    else if (curveRoot) { // reopened: no proof now
      curveRoot = undefined;
      curve.replaceChildren();
    }
    const fact = (name: string, value: string | number | bigint, mono = false) =>
      h("tr", {}, h("th", {}, name), h("td", mono ? { class: "mono" } : {}, String(value)));
    const someone = (address: string) => (address === ZERO_ADDRESS ? "—" : address);
    facts.replaceChildren(
      fact("payment held", eth(task.escrow + task.tax)),
      fact("solver stake", eth(task.solver_stake)),
      fact("submitter", task.submitter, true),
      fact("solver", someone(task.solver), true),
      fact("verifier", someone(task.verifier), true),
      fact("schedule", `${task.checkpoints} checkpoints, every ${task.checkpoint_interval} steps; train window ${duration(Number(task.train_window))}`),
      fact("spec hash", task.spec_hash, true),
      fact("proof root", /^0x0+$/.test(task.proof_root) ? "—" : task.proof_root, true),
    );
    const start = rows[0]?.timestamp ?? 0n;
    timeline.replaceChildren(...rows.map((row) => h("tr", {},
      h("td", {}, row.block), h("td", {}, `+${duration(Number(row.timestamp - start))}`),
      h("td", {}, row.event), h("td", { class: "mono" }, row.detail))));
  }

  /** The dispute's phase, whose move and the clocks, the argued step (`dtm task status`). */
  async function disputeView(disputeId: bigint, now: number): Promise<HTMLElement[]> {
    try {
      const { fields, extras } = await ctx.market.dispute(disputeId);
      return [h("h2", {}, "Dispute"), ...disputeLines(disputeId, fields, now, extras).map((line) => h("p", { class: "dispute-line" }, line))];
    } catch (error) {
      return [h("p", { class: "muted" }, describe(error, "Reading the dispute"))];
    }
  }

  /** What the connected account may do now: cancel its open task (`dtm task cancel`), or enforce a
   *  passed deadline, as anyone may (`dtm task expire`). */
  function taskActions(task: TaskView, now: number): HTMLElement[] {
    const { wallet, market } = ctx;
    if (!wallet) return [];
    const buttons: HTMLElement[] = [];
    if (task.state === TaskState.OPEN && task.submitter === wallet.account) {
      const cancel = h("button", { type: "button", id: "cancel-task" }, "Cancel and refund") as HTMLButtonElement;
      cancel.addEventListener("click", () => void act(cancel, "Cancelling", async () => {
        await market.send(wallet, "cancel", [id]);
        return `Task ${id} cancelled: its payment is in your credits (withdraw it on the Stake page).`;
      }, refresh));
      buttons.push(cancel);
    }
    const due = task.state === TaskState.OPEN ? task.expires : task.deadline;
    if (EXPIRABLE.includes(task.state) && !task.draw_block && BigInt(now) > due) {
      const expire = h("button", { type: "button", id: "expire-task" }, "Enforce the deadline") as HTMLButtonElement;
      expire.addEventListener("click", () => void act(expire, "Enforcing the deadline", async () => {
        await market.send(wallet, "expire", [id]);
        return `Task ${id}: now ${stateName((await market.task(id)).state)}.`;
      }, refresh));
      buttons.push(expire);
    }
    return buttons.length ? [h("form", {}, ...buttons)] : [];
  }

  /** A button whose work reads the content store: disabled meanwhile, a failure in the notice. */
  function storeButton(buttonId: string, label: string, action: string,
    work: (ipfsApi: string, button: HTMLButtonElement) => Promise<void>): HTMLButtonElement {
    const button = h("button", { type: "button", id: buttonId }, label) as HTMLButtonElement;
    button.addEventListener("click", async () => {
      button.disabled = true;
      clearNotice();
      try {
        if (!ctx.config.ipfsApi) throw new AppError("This app was given no content store (ipfs_api in config.json): serve it with `dtm node up`.");
        await work(ctx.config.ipfsApi, button);
      } catch (error) {
        notify(describe(error, action));
      }
      button.disabled = false;
    });
    return button;
  }

  /** The loss curve of the task's current proof (`dtm task status --plot`), drawn as soon as a proof
   *  is published and redrawn when another one replaces it; computed once per proof root. */
  let curveRoot: Hex | undefined;
  function showCurve(root: Hex, retry = false): void {
    if (root === curveRoot && !retry) return;
    curveRoot = root;
    const title = h("h2", {}, "Loss curve");
    const api = ctx.config.ipfsApi;
    if (!api) {
      curve.replaceChildren(title, h("p", { class: "muted" }, "This app was given no content store (ipfs_api in config.json): serve it with `dtm node up` to see the curve."));
      return;
    }
    curve.replaceChildren(title, h("p", { class: "muted" }, "Checking the published checkpoints and computing their loss…"));
    results().then((r) => r.lossCurve(ctx.market, api, id, root, retry)).then((got) => {
      if (curveRoot === root) curve.replaceChildren(title, lossChart(got));
    }, (error) => {
      if (curveRoot !== root) return;
      if (error?.name === "ProgramTask") {
        curve.replaceChildren(title, h("p", { id: "curve-note" }, `This task trains its own program: \`dtm task status ${id} --plot\` draws its loss curve.`));
        return;
      }
      if (error?.name === "GroupTask") {
        curve.replaceChildren(title, h("p", { id: "curve-note" }, error.message));
        return;
      }
      const again = h("button", { type: "button", id: "curve-retry" }, "Try again");
      again.addEventListener("click", () => showCurve(root, true));
      curve.replaceChildren(title, h("p", { id: "curve-error" }, describe(error, "Computing the loss curve")),
        ...(error?.name === "BadArtifact" ? [] : [again])); // a store or chain that did not answer
    });
  }

  /** `dtm task result`: fetch the trained weights, check them, offer them as a file. */
  function resultButton(): HTMLElement {
    return storeButton("get-result", "Get the trained weights", "Getting the result", async (ipfsApi) => {
      const got = await (await results()).fetchResult(ctx.market, ipfsApi, id);
      const link = h("a", { id: "download-weights", download: `task-${id}.safetensors`,
        href: URL.createObjectURL(new Blob([got.weights as Uint8Array<ArrayBuffer>])) }, "Download the weights (safetensors)");
      result.replaceChildren(h("p", { id: "result-checked" }, `Trained weights ${got.weightsCid}: checked against the task's spec ` +
        `hash, the proof root it was paid for and the last of its ${got.checkpoints} checkpoint roots; final loss ` +
        `${got.finalLoss.toFixed(4)}.`), link);
    });
  }

  return { el, refresh };
}

/** The losses as a line over the steps in an inline SVG, with its axes labelled and the first and
 *  last loss written out. */
function lossChart({ steps, losses, checkpoints }: Curve): HTMLElement {
  const [width, height, left, right, top, bottom] = [640, 240, 60, 16, 12, 40];
  const [low, high] = [Math.min(...losses), Math.max(...losses)];
  const span = high - low || Math.abs(high) || 1, [yMin, yMax] = [low - 0.05 * span, high + 0.05 * span];
  const lastStep = steps.at(-1) || 1;
  const px = (step: number) => left + (step / lastStep) * (width - left - right);
  const py = (loss: number) => top + ((yMax - loss) / (yMax - yMin)) * (height - top - bottom);
  const points = steps.map((step, i) => [px(step), py(losses[i])].map((v) => v.toFixed(1)));
  const text = (x: number, y: number, anchor: string, value: string) =>
    `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" text-anchor="${anchor}" font-size="12" fill="#667085">${value}</text>`;
  const yTicks = [yMin, (yMin + yMax) / 2, yMax], xTicks = [...new Set([0, Math.round(lastStep / 2), lastStep])];
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("id", "loss-curve");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("data-steps", JSON.stringify(steps));
  svg.setAttribute("data-losses", JSON.stringify(losses));
  svg.innerHTML = // numbers only: nothing from the store is written as markup
    `<path d="M${left},${top}V${height - bottom}H${width - right}" fill="none" stroke="#98a2b3"/>` +
    yTicks.map((v) => `<path d="M${left - 4},${py(v).toFixed(1)}h4" stroke="#98a2b3"/>` + text(left - 6, py(v) + 4, "end", v.toFixed(3))).join("") +
    xTicks.map((s) => `<path d="M${px(s).toFixed(1)},${height - bottom}v4" stroke="#98a2b3"/>` + text(px(s), height - bottom + 16, "middle", String(s))).join("") +
    text((left + width - right) / 2, height - 4, "middle", "step") +
    `<text transform="translate(14 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12" fill="#667085">loss</text>` +
    `<polyline fill="none" stroke="#2f5bea" stroke-width="2" points="${points.map((p) => p.join(",")).join(" ")}"/>` +
    points.map(([x, y], i) => `<circle r="3" fill="#2f5bea" cx="${x}" cy="${y}"><title>step ${steps[i]}: loss ${losses[i].toFixed(4)}</title></circle>`).join("");
  const spread = steps.length < checkpoints ? ` (of ${checkpoints}, evenly spread)` : "";
  return h("figure", {}, svg, h("figcaption", { class: "muted" },
    `loss ${losses[0].toFixed(4)} → ${losses.at(-1)!.toFixed(4)} over ${steps.length} checkpoints${spread}, each checked ` +
    "against its committed root; mean cross-entropy on the task's training rows."));
}

const EXPIRABLE: bigint[] = [TaskState.OPEN, TaskState.CLAIMED, TaskState.SUBMITTED];
