// The post page's reading of program files (webapp/src/program.ts `loadProgram`) for the cases on
// stdin ({name: [program base64, weights base64]}); prints each one's model CID or its error, as JSON.
import { readFileSync } from "node:fs";
import { webappModule } from "./webapp_module.mjs";

const { loadProgram } = await webappModule("program.ts");
const { computeCid } = await webappModule("commit/cid.ts");
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = {};
for (const [name, [program, weights]] of Object.entries(cases)) {
  try {
    out[name] = { model_cid: computeCid(loadProgram(Buffer.from(program, "base64"), Buffer.from(weights, "base64")).program.bytes) };
  } catch (error) {
    if (error.name !== "ProgramError") throw error;
    out[name] = { error: error.message };
  }
}
console.log(JSON.stringify(out));
