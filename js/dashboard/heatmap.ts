// The module heatmap: one cell per adapted module (layers down, roles across) coloured by the
// chosen per-module signal of one sample, a step slider over the samples, and a line that says
// what the signal measures and what it does not. Python computes every value
// (jupyter_peft/diagnostics/, sent by ui/dashboard/modules.py); this only draws them:
//   {kind: "modules-reset", meta, samples, nan}  the columns and every sample so far (thinned)
//   {kind: "modules", samples, nan?}             new samples only
//   {kind: "modules-suggest", cell, reasoning}   the run ended: its rank suggestion, for the button
import type { PlotLib } from "../common/plotly";
import { copyText, insertCell } from "../studio/cell";
import { ensureStyle } from "../common/style";
import { themeColors, themed } from "../common/theme";
import type { Part } from "./index";
import type { Model, ModuleSample, ModulesMeta, ModulesMsg, NanReport } from "./types";
import { el } from "../common/el";

/** Samples the page keeps; beyond it the older half is thinned to every other sample. */
export const MAX_SAMPLES = 400;
export const CAPTION =
  "Gradient norm: how hard the loss pulls on a module's adapter (pre-clip). Update: how far its weight delta " +
  "moved since the last sample (or since the start). Relative update: the delta's norm over the frozen weight's. " +
  "They show where the adapter changes, not what matters: a small update is not proof of a useless module.";

/** The heatmap's grid: roles across (first-seen order), layers down, and each module's cell. */
export function layout(meta: ModulesMeta): { roles: string[]; layers: string[]; cell: [number, number][] } {
  const roles = [...new Set(meta.groups)];
  const nums = [...new Set(meta.layers.filter((l): l is number => l !== null))].sort((a, b) => a - b);
  const layers = nums.map(String);
  if (meta.layers.some((l) => l === null)) layers.push("other");
  const cell = meta.paths.map((_, i): [number, number] => [
    layers.indexOf(meta.layers[i] === null ? "other" : String(meta.layers[i])),
    roles.indexOf(meta.groups[i]),
  ]);
  return { roles, layers, cell };
}

/** The plotly heatmap trace of `signal` at one sample: log10 colours, the path and value on hover. */
export function trace(meta: ModulesMeta, sample: ModuleSample, signal: string): Record<string, unknown> {
  const { roles, layers, cell } = layout(meta);
  const row = Object.keys(meta.signals).indexOf(signal);
  const name = meta.signals[signal] ?? signal;
  const z: (number | null)[][] = layers.map(() => roles.map(() => null));
  const text: string[][] = layers.map(() => roles.map(() => ""));
  sample[1][row]?.forEach((v, i) => {
    const [y, x] = cell[i];
    z[y][x] = v !== null && v > 0 ? Math.log10(v) : null;
    const rank = meta.ranks[i] === null ? "" : `, r=${meta.ranks[i]}`;
    text[y][x] = `${meta.paths[i]}${rank}<br>${name}: ${v === null ? "not finite" : v.toPrecision(4)}`;
  });
  return {
    type: "heatmap", z, x: roles, y: layers, text, hoverinfo: "text", hoverongaps: false,
    colorscale: "Viridis", colorbar: { title: { text: "log10", side: "right" }, thickness: 12 }, xgap: 1, ygap: 1,
  };
}

/** The heatmap's rules, scoped under the dashboard's root like style.ts's. */
const STYLE = `
.jp-peft-dashboard .jp-peft-modules { margin-top: 8px; }
.jp-peft-dashboard .jp-peft-modules-head { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.jp-peft-dashboard .jp-peft-modules-title { font-weight: 600; }
.jp-peft-dashboard select.jp-peft-modules-signal { width: auto; flex: none; max-width: 260px; }
.jp-peft-dashboard .jp-peft-modules-step { flex: 1; min-width: 120px; max-width: 420px; }
.jp-peft-dashboard .jp-peft-modules-caption { font-size: 11px; margin-top: 2px; }
.jp-peft-dashboard .jp-peft-modules-suggest { margin-top: 6px; }
.jp-peft-dashboard .jp-peft-modules-suggest-text { font-size: 11px; max-height: 160px; overflow: auto; white-space: pre-wrap; }
`;


/** Drop every other sample of the older half when there are more than `most` (the last stays). */
export function thin(samples: ModuleSample[], most = MAX_SAMPLES): ModuleSample[] {
  if (samples.length <= most) return samples;
  const half = Math.floor(samples.length / 2);
  return samples.slice(0, half).filter((_, i) => i % 2 === 0).concat(samples.slice(half));
}

export class Heatmap implements Part {
  readonly el: HTMLElement;
  private meta: ModulesMeta | null = null;
  private samples: ModuleSample[] = [];
  private index = -1; // -1: follow the latest sample
  private plot: HTMLElement;
  private select: HTMLSelectElement;
  private slider: HTMLInputElement;
  private stepText: HTMLElement;
  private nanLine: HTMLElement;
  private drawn = false;
  private suggestBox: HTMLElement;
  private suggestButton: HTMLButtonElement;
  private suggestText: HTMLElement;
  private cell = "";

  constructor(box: HTMLElement, private plotly: PlotLib) {
    ensureStyle(box.ownerDocument, "dashboard-modules", STYLE);
    this.el = el("div", "jp-peft-modules", box);
    this.el.hidden = true; // until the columns arrive (a run without diagnostics shows nothing)
    const head = el("div", "jp-peft-modules-head", this.el);
    el("span", "jp-peft-modules-title", head, "per-module signals");
    this.select = el("select", "jp-peft-modules-signal jp-mod-styled", head);
    this.slider = el("input", "jp-peft-modules-step", head);
    this.slider.type = "range";
    this.slider.min = "0";
    this.stepText = el("span", "jp-peft-modules-step-text jp-peft-muted", head);
    this.plot = el("div", "jp-peft-modules-plot", this.el);
    this.nanLine = el("div", "jp-peft-modules-nan jp-peft-error", this.el);
    el("div", "jp-peft-modules-caption jp-peft-muted", this.el, CAPTION);
    this.suggestBox = el("div", "jp-peft-modules-suggest", this.el);
    this.suggestBox.hidden = true;
    this.suggestButton = el("button", "jp-peft-modules-suggest-cell jp-mod-styled", this.suggestBox,
      "Write a %%peft cell with the suggested ranks");
    this.suggestText = el("pre", "jp-peft-modules-suggest-text jp-peft-muted", this.suggestBox);
    this.suggestButton.addEventListener("click", this.onWrite);
    this.select.addEventListener("change", this.onChange);
    this.slider.addEventListener("input", this.onSlide);
  }

  private onChange = () => this.draw();
  private onWrite = () => {
    if (!insertCell(this.el, this.cell)) void copyText(this.cell, this.suggestText); // no extension: copy it
  };
  private onSlide = () => {
    const i = Number(this.slider.value);
    this.index = i >= this.samples.length - 1 ? -1 : i;
    this.draw();
  };

  onMsg(msg: any): boolean {
    const m = msg as ModulesMsg;
    if (m?.kind === "modules-suggest") {
      this.cell = m.cell;
      this.suggestText.textContent = `${m.reasoning}\n\n${m.cell}`;
      this.suggestBox.hidden = false;
      return true;
    }
    if (m?.kind === "modules-reset") {
      this.setMeta(m.meta);
      this.samples = thin(m.samples.slice());
      this.index = -1;
      this.setNan(m.nan);
    } else if (m?.kind === "modules") {
      if (!this.meta) return true; // the reset comes first; nothing to draw on yet
      this.samples = thin(this.samples.concat(m.samples));
      if (m.nan) this.setNan(m.nan);
      if (this.index >= this.samples.length) this.index = -1;
    } else {
      return false;
    }
    this.draw();
    return true;
  }

  private setMeta(meta: ModulesMeta): void {
    const before = this.select.value;
    this.meta = meta;
    this.select.replaceChildren(...Object.entries(meta.signals).map(([key, name]) => {
      const option = document.createElement("option");
      option.value = key;
      option.textContent = name;
      return option;
    }));
    this.select.value = before && before in meta.signals ? before : "relative" in meta.signals ? "relative" : Object.keys(meta.signals)[0];
    this.el.hidden = false;
  }

  private setNan(nan: NanReport | null | undefined): void {
    this.nanLine.textContent = nan ? nan.text : "";
  }

  /** The sample shown (the latest unless the slider was moved back). */
  get shown(): ModuleSample | undefined {
    return this.samples[this.index < 0 ? this.samples.length - 1 : this.index];
  }

  draw(): void {
    if (!this.meta) return;
    const n = this.samples.length;
    this.slider.max = String(Math.max(0, n - 1));
    this.slider.value = String(this.index < 0 ? Math.max(0, n - 1) : this.index);
    this.slider.disabled = n < 2;
    const sample = this.shown;
    this.stepText.textContent = sample ? `step ${sample[0]} (sample ${(this.index < 0 ? n - 1 : this.index) + 1} of ${n})` : "no sample yet";
    if (!sample) return;
    const { layers } = layout(this.meta);
    const base = {
      height: Math.min(720, Math.max(220, 70 + 20 * layers.length)),
      margin: { l: 48, r: 8, t: 10, b: 70 },
      xaxis: { type: "category", tickangle: -30, automargin: true },
      yaxis: { type: "category", autorange: "reversed", title: { text: "layer" } },
      font: { size: 10 },
    };
    const look = themed(base, themeColors(this.el));
    const data = [trace(this.meta, sample, this.select.value)];
    const config = { displaylogo: false, responsive: true };
    if (this.drawn) this.plotly.react(this.plot, data, look, config);
    else this.plotly.newPlot(this.plot, data, look, config);
    this.drawn = true;
  }

  redraw(): void {
    this.draw();
  }

  dispose(): void {
    this.select.removeEventListener("change", this.onChange);
    this.slider.removeEventListener("input", this.onSlide);
    this.suggestButton.removeEventListener("click", this.onWrite);
    if (this.drawn) this.plotly.purge(this.plot);
    this.el.remove();
  }
}

/** The dashboard part (js/dashboard/index.ts PARTS). */
export function heatmapPart(_model: Model, box: HTMLElement, plotly: PlotLib): Part {
  return new Heatmap(box, plotly);
}
