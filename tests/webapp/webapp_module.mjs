// A module of the web app (webapp/src/PATH) bundled for Node and imported, for the tests' scripts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";

export async function webappModule(path) {
  const dir = mkdtempSync(join(tmpdir(), "webapp-module-"));
  const outfile = join(dir, "module.mjs");
  await esbuild.build({ entryPoints: [new URL(`../../webapp/src/${path}`, import.meta.url).pathname], bundle: true,
    format: "esm", platform: "node", outfile, logLevel: "warning" });
  try {
    return await import(outfile);
  } finally {
    rmSync(dir, { recursive: true });
  }
}
