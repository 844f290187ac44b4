// The market: the jackpot and its terms (`dtm jackpot`), every task (`dtm task list`) with its deadline.
import { h } from "../dom";
import { eth, short } from "../format";
import type { Context, View } from "../context";
import { stateName, TaskState } from "../market";
import { setChainTime, taskDeadline } from "./countdown";

const percent = (ppm: bigint) => `${Number(ppm) / 10_000}%`;

export function overview(ctx: Context): View {
  const summary = h("div", { class: "cards" });
  const terms = h("p", { class: "muted", id: "jackpot-terms" });
  const mine = h("input", { type: "checkbox", id: "mine", onchange: () => void refresh() }) as HTMLInputElement;
  const rows = h("tbody");
  const jackpotRows = h("tbody");
  const el = h("section", {},
    h("h1", {}, "Market"), summary, terms,
    h("h2", {}, "Tasks ", ctx.wallet ? h("label", { class: "muted" }, mine, " only mine") : null),
    h("table", { id: "tasks" }, h("thead", {}, h("tr", {}, ...["task", "state", "payment", "solver stake", "submitter", "deadline"].map((t) => h("th", {}, t)))), rows),
    h("h2", {}, "Jackpot activity"),
    h("table", { id: "jackpot-activity" }, h("thead", {}, h("tr", {}, ...["block", "move", "pool after"].map((t) => h("th", {}, t)))), jackpotRows));

  async function refresh(): Promise<void> {
    const { market } = ctx;
    const [tasks, pool, current, now, moves] = await Promise.all([market.tasks(), market.pool(), market.terms(), market.now(),
      market.jackpotActivity()]);
    jackpotRows.replaceChildren(...moves.map((move) => h("tr", {},
      h("td", {}, move.block),
      h("td", {}, move.paid ? `paid ${eth(move.amount)} to ${move.winner}` : `funded ${eth(move.amount)}`),
      h("td", {}, eth(move.pool)))));
    if (!moves.length) jackpotRows.replaceChildren(h("tr", {}, h("td", { colspan: "3", class: "muted" }, "no payments yet")));
    setChainTime(now);
    const open = tasks.filter((t) => t.state === TaskState.OPEN).length;
    summary.replaceChildren(
      h("div", { class: "card", id: "jackpot" }, "Jackpot", h("b", {}, eth(pool))),
      h("div", { class: "card" }, "Tasks", h("b", { id: "task-count" }, tasks.length)),
      h("div", { class: "card" }, "Open for solvers", h("b", { id: "open-count" }, open)),
    );
    terms.textContent = `The jackpot pays ${percent(current.payout_ppm)} of the pool, at most ${eth(current.payout_cap)}, per proven ` +
      `forced error; ${percent(current.forced_error_ppm)} of proofs are forced errors; a tax of ${percent(current.tax_ppm)} of each payment funds it.`;
    const shown = tasks.filter((t) => !mine.checked || t.submitter === ctx.wallet?.account).reverse();
    rows.replaceChildren(...shown.map((t) => h("tr", { "data-task": String(t.id) },
      h("td", {}, h("a", { href: `#/task/${t.id}` }, `task ${t.id}`)),
      h("td", {}, h("span", { class: "state" }, stateName(t.state))),
      h("td", {}, eth(t.escrow + t.tax)),
      h("td", {}, eth(t.solver_stake)),
      h("td", { class: "mono", title: t.submitter }, short(t.submitter)),
      h("td", {}, taskDeadline(t) ?? ""))));
    if (!shown.length) rows.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "no tasks")));
  }

  return { el, refresh };
}
