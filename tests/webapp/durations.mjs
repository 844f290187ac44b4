// The web app's `duration` (webapp/src/format.ts) on the seconds read from stdin as a JSON list; prints them as JSON.
import { readFileSync } from "node:fs";
import { webappModule } from "./webapp_module.mjs";

const { duration } = await webappModule("format.ts");
console.log(JSON.stringify(JSON.parse(readFileSync(0, "utf8")).map(duration)));
