// Deadlines as live countdowns, named as `dtm task status` names them (`_deadline` in offchain/cli.py).
import { h } from "../dom";
import { duration } from "../format";
import { TaskState, type TaskView } from "../market";

const DEADLINES = new Map<bigint, [string, string]>([
  [TaskState.OPEN, ["open for solvers", "anyone may expire it (the payment is refunded)"]],
  [TaskState.CLAIMED, ["training window", "anyone may expire it (the solver is slashed, the task reopens)"]],
  [TaskState.SUBMITTED, ["verify window", "anyone may expire it (the silent verifier pays, another is drawn)"]],
  [TaskState.ACCEPTED, ["whistleblower window", "the solver may finalise and be paid"]],
]);

/** Seconds the chain's clock is ahead of this machine's (`Market.now` is the later of both). */
let offset = 0;
export function setChainTime(now: number): void {
  offset = now - Date.now() / 1000;
}
const chainNow = () => Date.now() / 1000 + offset;

/** A countdown to `deadline` (unix seconds): "`what` closes in 4m 10s", then "closed … ago: `then`". */
export function countdown(deadline: bigint, what: string, then: string): HTMLElement {
  const el = h("span", { class: "countdown", "data-deadline": String(deadline), "data-what": what, "data-then": then });
  update(el);
  return el;
}

function update(el: HTMLElement): void {
  const left = Number(el.dataset.deadline) - chainNow();
  el.textContent = left > 0 ? `${el.dataset.what} closes in ${duration(left)}`
    : `${el.dataset.what} closed ${duration(-left)} ago: ${el.dataset.then}`;
}

export function tickCountdowns(): void {
  document.querySelectorAll<HTMLElement>(".countdown").forEach(update);
}

/** The running deadline of a task, or what it waits for instead; null when it has none. */
export function taskDeadline(task: TaskView): HTMLElement | null {
  if (task.draw_block && (task.state === TaskState.CLAIMED || task.state === TaskState.SUBMITTED)) {
    return h("span", {}, `randomness committed at block ${task.draw_block}: anyone may call draw from the next block`);
  }
  if (task.state === TaskState.DISPUTED) return h("span", {}, `dispute ${task.dispute_id} in progress (the timeline below shows its moves)`);
  const named = DEADLINES.get(task.state);
  if (!named) return null;
  return countdown(task.state === TaskState.OPEN ? task.expires : task.deadline, ...named);
}
