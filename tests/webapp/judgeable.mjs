// The post page's judgeability check (webapp/src/publish.ts `unjudgeable`) for the cases on stdin
// ([dim, classes, hidden, batch] each); prints whether each is judgeable, as JSON.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";

const dir = mkdtempSync(join(tmpdir(), "judgeable-"));
const outfile = join(dir, "publish.mjs");
await esbuild.build({ entryPoints: [new URL("../../webapp/src/publish.ts", import.meta.url).pathname], bundle: true,
  format: "esm", platform: "node", outfile, logLevel: "warning" });
const { unjudgeable } = await import(outfile);
rmSync(dir, { recursive: true });
const cases = JSON.parse(readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(([dim, classes, hidden, batch]) => unjudgeable(dim, { hidden, batchSize: batch }, classes) === null)));
