// The web app's dispute view (webapp/src/dispute.ts) on the cases read from stdin as JSON
// ([id, fields, now, extras] with integers as strings); prints the lines of each as JSON.
import { readFileSync } from "node:fs";
import { webappModule } from "./webapp_module.mjs";

const { disputeLines } = await webappModule("dispute.ts");

const big = (fields) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, /^\d+$/.test(v) ? BigInt(v) : v]));
const cases = JSON.parse(readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(([id, fields, now, extras]) => disputeLines(BigInt(id), big(fields), now, big(extras)))));
