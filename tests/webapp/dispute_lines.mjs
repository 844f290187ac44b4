// The web app's dispute view (webapp/src/dispute.ts) on the cases read from stdin as JSON
// ([id, fields, now, extras] with integers as strings); prints the lines of each as JSON.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";

const dir = mkdtempSync(join(tmpdir(), "dispute-"));
const outfile = join(dir, "dispute.mjs");
await esbuild.build({ entryPoints: [new URL("../../webapp/src/dispute.ts", import.meta.url).pathname], bundle: true,
  format: "esm", platform: "node", outfile, logLevel: "warning" });
const { disputeLines } = await import(outfile);
rmSync(dir, { recursive: true });

const big = (fields) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, /^\d+$/.test(v) ? BigInt(v) : v]));
const cases = JSON.parse(readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(([id, fields, now, extras]) => disputeLines(BigInt(id), big(fields), now, big(extras)))));
