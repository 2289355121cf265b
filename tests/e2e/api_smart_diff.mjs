// Classify each pair of specs with api-smart-diff: reads {"name": [before, after], ...} as JSON
// on standard input and prints {"name": ["breaking", ...], ...}: the types of the changes it
// finds under paths and security schemes (its copies under components/schemas are context-free
// duplicates of those, so they are left out, as our diff leaves them out).
// Usage: node api_smart_diff.mjs TOOLS_DIR (the folder whose node_modules holds api-smart-diff).
import { createRequire } from "node:module";
import { join } from "node:path";

const { apiCompare } = createRequire(join(process.argv[2], "package.json"))("api-smart-diff");

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const cases = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const result = {};
for (const [name, [before, after]] of Object.entries(cases)) {
  const { diffs } = apiCompare(before, after);
  result[name] = diffs
    .filter((diff) => diff.path[0] !== "components" || diff.path[1] === "securitySchemes")
    .map((diff) => diff.type);
}
console.log(JSON.stringify(result));
