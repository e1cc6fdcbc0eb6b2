// Builds the front ends into jupyter_peft/static/:
//   plotly.js         plotly.js's core + the bar trace (js/plotly/bundle.ts), shared by both widgets:
//                     the page gets it once, over the first widget's comm (js/common/plotly.ts);
//   <widget>.js       one ESM bundle per widget, js/<widget>/index.ts, without plotly.
// Flags (see STYLE.md): --bundle so the wheel installs offline with everything inside;
// --format=esm because anywidget imports the bundle as a module; --minify to keep what the
// browser downloads small; define.amd=false so plotly's UMD pieces never look for RequireJS
// (JupyterLab pages may carry one). The widgets get plotly's content hash as __PLOTLY_ID__: a
// page that holds an older plotly from an earlier build asks for the new one.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const out = join(here, "..", "jupyter_peft", "static");
const common = { bundle: true, format: "esm", minify: true, target: "es2020", legalComments: "none", logLevel: "warning" };

await build({
  ...common,
  entryPoints: [join(here, "plotly", "bundle.ts")],
  outfile: join(out, "plotly.js"),
  define: { "define.amd": "false", global: "globalThis" },
  loader: { ".css": "empty" }, // maplibre's stylesheet, which plotly's registry imports for map traces
});
const plotlyId = createHash("sha256").update(readFileSync(join(out, "plotly.js"))).digest("hex").slice(0, 12);
console.log(`built static/plotly.js (${plotlyId})`);

const widgets = readdirSync(here, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(here, d.name, "index.ts")))
  .map((d) => d.name)
  .sort();
for (const name of widgets) {
  await build({
    ...common,
    entryPoints: [join(here, name, "index.ts")],
    outfile: join(out, `${name}.js`),
    define: { "define.amd": "false", __PLOTLY_ID__: JSON.stringify(plotlyId) },
  });
  console.log(`built static/${name}.js`);
}
