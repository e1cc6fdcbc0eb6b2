// Builds one self-contained ESM bundle per widget: js/<widget>/index.ts -> jupyter_peft/static/<widget>.js
// Flags (see STYLE.md): --bundle so the wheel installs offline with everything inside;
// --format=esm because anywidget imports the bundle as a module; --minify to keep what the
// browser downloads small; define.amd=false so plotly's UMD wrapper never looks for RequireJS
// (JupyterLab pages may carry one, and plotly would then register there instead of returning).
import { build } from "esbuild";
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const widgets = readdirSync(here, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(here, d.name, "index.ts")))
  .map((d) => d.name)
  .sort();

for (const name of widgets) {
  await build({
    entryPoints: [join(here, name, "index.ts")],
    outfile: join(here, "..", "jupyter_peft", "static", `${name}.js`),
    bundle: true,
    format: "esm",
    minify: true,
    define: { "define.amd": "false" },
    target: "es2020",
    legalComments: "none",
    logLevel: "warning",
  });
  console.log(`built static/${name}.js`);
}
