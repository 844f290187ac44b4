// A dispute as a person reads it (`DisputeStatus.lines` in offchain/dispute/status.py, word for word):
// the phase, the side to move with its duty and clock, the other side's clock, the argued step.

// Arbitration phases (contracts/Arbitration.vy), as offchain/dispute/game.py names them
const PHASE_NAMES = ["none", "reveal", "pick", "bisect", "trace", "prove", "demand", "solver won", "challenger won",
  "partials", "sum pick"];
const [REVEAL, PICK, BISECT, TRACE, PROVE, DEMAND, SOLVER_WON, CHALLENGER_WON, PARTIALS, SUM_PICK] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const SOLVER_PHASES = new Set([REVEAL, BISECT, TRACE, DEMAND, PARTIALS]);
const DUTIES: Record<number, string> = {
  [REVEAL]: "reveal the state roots of the disputed segment",
  [PICK]: "pick the interval of steps it disagrees with",
  [BISECT]: "reveal the state roots inside the picked interval",
  [TRACE]: "commit the trace of the picked step",
  [PROVE]: "prove one link, data row or node element of the step wrong",
  [DEMAND]: "post the elements the challenger paid to see",
  [PARTIALS]: "post the partial sums of the argued reduction",
  [SUM_PICK]: "pick a partial sum, or prove a chunk or the fold wrong",
};
// DisputeEnded.reason
const ENDINGS: Record<number, string> = {
  1: "the other side's clock ran out", 2: "a link proven wrong", 3: "a data row proven wrong",
  4: "a node element proven wrong", 5: "a chunk of a reduction proven wrong", 6: "a reduction's fold proven outside its bound",
};

/** The fields of `Arbitration.disputes(id)` this view reads. */
export interface DisputeFields {
  segment: bigint; phase: bigint; moves: bigint; solver: string; challenger: string; turn_start: bigint;
  solver_clock: bigint; challenger_clock: bigint; first_step: bigint; span: bigint; trace_root: string; demand_node: bigint;
}

/** What is known of the dispute besides its fields: the node a reduction argues (PARTIALS, SUM_PICK)
 *  and the reason it ended (`DisputeEnded.reason`), if it has. */
export interface DisputeExtras { reductionNode?: bigint; endReason?: bigint }

export const disputeEnded = (phase: bigint): boolean => phase === BigInt(SOLVER_WON) || phase === BigInt(CHALLENGER_WON);
export const reductionPhase = (phase: bigint): boolean => phase === BigInt(PARTIALS) || phase === BigInt(SUM_PICK);

export function disputeLines(id: bigint, d: DisputeFields, now: number, extras: DisputeExtras = {}): string[] {
  const phase = Number(d.phase);
  const head = `dispute ${id} over segment ${d.segment}, ${d.moves} moves`;
  if (disputeEnded(d.phase)) {
    const winner = phase === SOLVER_WON ? "the solver" : "the challenger";
    return [`${head}: ended, ${winner} won (${ENDINGS[Number(extras.endReason ?? 0)] ?? ""})`];
  }
  const side = SOLVER_PHASES.has(phase) ? "solver" : "challenger";
  const other = side === "solver" ? "challenger" : "solver";
  const clock = (who: string) => Number(who === "solver" ? d.solver_clock : d.challenger_clock);
  const left = Math.max(clock(side) - Math.max(now - Number(d.turn_start), 0), 0);
  const lines = [`${head}: ${PHASE_NAMES[phase]}, the ${side} ${side === "solver" ? d.solver : d.challenger} must ` +
    `${DUTIES[phase]}; ${left} s left on its clock (the ${other} has ${clock(other)} s)`];
  if (d.span) {
    const node = phase === DEMAND ? d.demand_node : reductionPhase(d.phase) ? extras.reductionNode : undefined;
    lines.push(`argued: ${d.span === 1n ? `step ${d.first_step}` : `steps ${d.first_step}..${d.first_step + d.span - 1n}`}` +
      (/^0x0+$/.test(d.trace_root) ? "" : ", its trace committed") + (node === undefined ? "" : `, node ${node}`));
  }
  return lines;
}
