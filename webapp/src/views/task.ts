// One task (`dtm task status`): its state, the running deadline, what the chain holds, its timeline.
import { duration, eth, ZERO_ADDRESS } from "../format";
import type { Context, View } from "../context";
import { stateName, TaskState, type TaskView } from "../market";
import { clearNotice, h, notify } from "../dom";
import { disputeLines } from "../dispute";
import { AppError, describe } from "../errors";
import { fetchResult, lossCurve } from "../result";
import { act } from "./act";
import { setChainTime, taskDeadline } from "./countdown";

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
    if (!/^0x0+$/.test(task.proof_root) && !curve.childElementCount) curve.replaceChildren(curveButton());
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

  /** The loss of every checkpoint of the latest proof on the task's dataset, computed here from the
   *  checked checkpoints (as the demo plots them). */
  function curveButton(): HTMLElement {
    return storeButton("show-loss", "Show the loss curve", "Computing the loss curve", async (ipfsApi, button) => {
      const losses = await lossCurve(ctx.market, ipfsApi, id);
      curve.replaceChildren(h("h2", {}, "Loss curve"), lossChart(losses), button);
      button.textContent = "Update the loss curve";
    });
  }

  /** `dtm task result`: fetch the trained weights, check them, offer them as a file. */
  function resultButton(): HTMLElement {
    return storeButton("get-result", "Get the trained weights", "Getting the result", async (ipfsApi) => {
      const got = await fetchResult(ctx.market, ipfsApi, id);
      const link = h("a", { id: "download-weights", download: `task-${id}.safetensors`,
        href: URL.createObjectURL(new Blob([got.weights as Uint8Array<ArrayBuffer>])) }, "Download the weights (safetensors)");
      result.replaceChildren(h("p", { id: "result-checked" }, `Trained weights ${got.weightsCid}: checked against the task's spec ` +
        `hash, the proof root it was paid for and the last of its ${got.checkpoints} checkpoint roots; final loss ` +
        `${got.finalLoss.toFixed(4)}.`), link);
    });
  }

  return { el, refresh };
}

/** The losses as a line over the checkpoints, with the first and last values named. */
function lossChart(losses: number[]): HTMLElement {
  const [width, height, pad] = [640, 200, 8];
  const top = Math.max(...losses), bottom = Math.min(...losses);
  const points = losses.map((value, i) => {
    const px = pad + (i / Math.max(losses.length - 1, 1)) * (width - 2 * pad);
    const py = pad + (top === bottom ? 0.5 : (top - value) / (top - bottom)) * (height - 2 * pad);
    return `${px.toFixed(1)},${py.toFixed(1)}`;
  });
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("id", "loss-curve");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("data-losses", JSON.stringify(losses));
  svg.innerHTML = `<polyline fill="none" stroke="#2f5bea" stroke-width="2" points="${points.join(" ")}"/>` +
    points.map((p) => `<circle r="3" fill="#2f5bea" cx="${p.split(",")[0]}" cy="${p.split(",")[1]}"/>`).join("");
  return h("figure", {}, svg, h("figcaption", { class: "muted" },
    `Cross-entropy on the task's dataset at each of ${losses.length} checkpoints: ${losses[0].toFixed(4)} → ${losses.at(-1)!.toFixed(4)}.`));
}

const EXPIRABLE: bigint[] = [TaskState.OPEN, TaskState.CLAIMED, TaskState.SUBMITTED];
