// The price of a task before it is posted: its work (FLOPs of one step from its graph, as
// `dtm task quote` counts them, × steps) and what recent tasks on this market paid per unit of work
// (their TaskCreated escrow over their specs' work), with the payment that rate suggests. In
// program.js (webapp/src/program.ts), which the post page loads.
import { parseJson, utf8, type JsonValue } from "./commit/json";
import { parseProgram, work } from "./commit/program";
import type { Market } from "./market";
import { cat } from "./store";

const RECENT = 20; // tasks the rate is taken over, the latest
export interface Rate { weiPerFlop: number; tasks: number }


const field = (obj: JsonValue, key: string): JsonValue =>
  obj !== null && typeof obj === "object" && !Array.isArray(obj) && key in obj ? obj[key] : null;
const count = (value: JsonValue): number => {
  if (typeof value !== "bigint" || value < 1n || value > 1n << 31n) throw new Error("not a count");
  return Number(value);
};

/** FLOPs of a whole task from its spec: its program's work over its steps. */
async function taskFlops(api: string, spec: JsonValue): Promise<bigint> {
  if (field(spec, "hyper_root") === null) throw new Error("no training program");
  const model = await cat(api, String(field(spec, "model_cid")), "model");
  return work(parseProgram(model)).flops * BigInt(count(field(spec, "steps")));
}

/** Wei per FLOP that recent tasks paid (the median over the last RECENT whose spec and model the
 *  store gives), and how many it is taken over; null when there are none. */
export async function recentRate(market: Market, api: string): Promise<Rate | null> {
  const rates = (await Promise.all((await market.created(RECENT)).map(async ({ spec_cid, escrow }) => {
    try {
      const spec = parseJson(utf8(await cat(api, spec_cid, "task spec"), "task spec"), "task spec");
      const flops = await taskFlops(api, spec);
      return flops > 0n ? Number(escrow) / Number(flops) : null;
    } catch {
      return null; // a task whose files the store does not give, or not ours to read, is left out
    }
  }))).filter((r): r is number => r !== null).sort((a, b) => a - b);
  if (!rates.length) return null;
  const mid = rates.length >> 1;
  return { weiPerFlop: rates.length % 2 ? rates[mid] : (rates[mid - 1] + rates[mid]) / 2, tasks: rates.length };
}

const ETH = 1e18, TFLOP = 1e12;
/** Three significant digits, as a plain decimal (an amount `parseEther` reads). */
export const figure = (x: number) => x.toLocaleString("en-US", { maximumSignificantDigits: 3, useGrouping: false });

/** The page's price line, and the payment in ETH it suggests (null without recent tasks). */
const UNITS: [number, string][] = [[1e12, "TFLOP"], [1e9, "GFLOP"], [1e6, "MFLOP"], [1e3, "kFLOP"]];
/** FLOPs in the largest unit that keeps a whole figure: "46.6 kFLOP". */
export function flopsText(flops: number): string {
  const [scale, unit] = UNITS.find(([s]) => flops >= s) ?? [1, "FLOP"];
  return `${figure(flops / scale)} ${unit}`;
}

export function priceLine(flopsPerStep: bigint, steps: number, rate: Rate | null): [string, string | null] {
  const total = Number(flopsPerStep) * steps;
  const work = `Work: ${flopsText(Number(flopsPerStep))} a step × ${steps} steps = ${flopsText(total)}.`;
  if (!rate) return [`${work} No recent tasks on this market to price it by.`, null];
  const suggested = figure((rate.weiPerFlop * total) / ETH);
  return [`${work} Recent tasks paid ${figure((rate.weiPerFlop * TFLOP) / ETH)} ETH per TFLOP (median of ${rate.tasks}): ` +
    `about ${suggested} ETH for this one.`, suggested];
}

