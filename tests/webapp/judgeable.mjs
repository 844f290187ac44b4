// The post page's judgeability check (webapp/src/publish.ts `unjudgeable`) for the cases on stdin
// ([dim, classes, hidden, batch] each); prints whether each is judgeable, as JSON.
import { readFileSync } from "node:fs";
import { webappModule } from "./webapp_module.mjs";

const { unjudgeable } = await webappModule("publish.ts");
const cases = JSON.parse(readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(([dim, classes, hidden, batch]) => unjudgeable(dim, { hidden, batchSize: batch }, classes) === null)));
