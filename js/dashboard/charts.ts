// The dashboard's plotly charts: one small chart per panel, fed incrementally.
// New points go in with Plotly.extendTraces; a whole redraw (Plotly.react) happens only when a
// panel gains a trace, a series is thinned, a reset arrives or the theme changes. Python names
// each trace (`panel.labels`) and gives the axis unit and its scale (`panel.unit`,
// `panel.scale`: memory arrives in bytes and is drawn in MiB or GiB).

import type { PlotLib } from "../common/plotly";
import { themeColors, themed } from "../common/theme";
import { append, fromPair, type Series, type SeriesMap } from "./series";
import type { Flag, Panel } from "./types";

export type { Flag, Panel } from "./types";
export type { PlotLib } from "../common/plotly";

const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
const BASE_LAYOUT = {
  height: 220,
  margin: { l: 56, r: 12, t: 28, b: 32 },
  legend: { orientation: "h", x: 1, xanchor: "right", y: 1.18, font: { size: 10 } },
  xaxis: { title: { text: "step", font: { size: 10 } } },
  font: { size: 10 },
};

/** `ys` in the panel's unit (Python's scale; gaps stay gaps). */
export function scaled(ys: (number | null)[], scale: number): (number | null)[] {
  return scale === 1 ? ys.slice() : ys.map((v) => (v === null ? null : v * scale));
}

/** The layout of one panel's chart (without the theme's colours). */
export function panelLayout(panel: Panel, flags: Flag[]): Record<string, unknown> {
  return {
    ...BASE_LAYOUT,
    showlegend: panel.keys.length > 1, // one trace: the title says what it is
    title: { text: panel.title, font: { size: 12 }, x: 0.02 },
    yaxis: {
      type: panel.log_y ? "log" : "linear",
      exponentformat: "SI",
      rangemode: panel.from_zero ? "tozero" : "normal",
      title: panel.unit ? { text: panel.unit, font: { size: 10 } } : undefined,
    },
    shapes: panel.id === "loss" ? flags.map(flagLine) : [],
  };
}

export class Charts {
  private series = new Map<string, Series>();
  private drawn = new Map<string, { div: HTMLElement; panel: Panel }>();
  private flags: Flag[] = [];
  /** Panels drawn while a trace had one point (a line of one point is invisible: it gets a marker). */
  private sparse = new Set<string>();

  constructor(
    private grid: HTMLElement,
    private plotly: PlotLib,
    private maxPoints: () => number,
  ) {}

  /** Make sure every panel has its chart, with its current traces, names and units. */
  setPanels(panels: Panel[]): void {
    for (const panel of panels) {
      const known = this.drawn.get(panel.id);
      if (known && JSON.stringify(known.panel) === JSON.stringify(panel)) continue;
      const div = known ? known.div : this.grid.appendChild(document.createElement("div"));
      div.className = "jp-peft-chart";
      div.dataset.panel = panel.id;
      this.drawn.set(panel.id, { div, panel });
      this.redraw(panel.id, !known);
    }
  }

  /** Replace all points (a reset from Python: the history so far). */
  reset(map: SeriesMap): void {
    this.series.clear();
    for (const [key, pair] of Object.entries(map)) this.series.set(key, fromPair(pair));
    this.redrawAll();
  }

  /** Draw every chart again (new points from a reset, or the theme's new colours). */
  redrawAll(): void {
    for (const id of this.drawn.keys()) this.redraw(id, false);
  }

  /** Add new points; extend the charts in place unless a series had to be thinned. */
  extend(map: SeriesMap): void {
    const thinned = new Set<string>();
    for (const [key, [xs, ys]] of Object.entries(map)) {
      let s = this.series.get(key);
      if (!s) this.series.set(key, (s = { x: [], y: [] }));
      if (append(s, xs, ys, this.maxPoints())) thinned.add(key);
    }
    for (const [id, { div, panel }] of this.drawn) {
      if (panel.keys.some((k) => thinned.has(k)) || (this.sparse.has(id) && panel.keys.some((k) => map[k]))) {
        this.redraw(id, false);
        continue;
      }
      const idx = panel.keys.map((k, i) => (map[k] ? i : -1)).filter((i) => i >= 0);
      if (!idx.length) continue;
      const x = idx.map((i) => map[panel.keys[i]][0]);
      const y = idx.map((i) => scaled(map[panel.keys[i]][1], panel.scale));
      this.plotly.extendTraces(div, { x, y }, idx);
    }
  }

  /** NaN/inf steps: red dashed lines on the loss chart. */
  setFlags(flags: Flag[]): void {
    this.flags = flags;
    if (this.drawn.has("loss")) this.redraw("loss", false);
  }

  points(key: string): number {
    return this.series.get(key)?.x.length ?? 0;
  }

  purge(): void {
    for (const { div } of this.drawn.values()) this.plotly.purge(div);
    this.drawn.clear();
  }

  private redraw(id: string, first: boolean): void {
    const { div, panel } = this.drawn.get(id)!;
    const lengths = panel.keys.map((key) => this.series.get(key)?.x.length ?? 0);
    if (lengths.some((n) => n === 1)) this.sparse.add(id);
    else this.sparse.delete(id);
    const data = panel.keys.map((key, i) => {
      const s = this.series.get(key) ?? { x: [], y: [] };
      // copies: plotly extends its own arrays, ours are thinned separately
      return {
        type: "scatter", mode: lengths[i] === 1 ? "lines+markers" : "lines", name: panel.labels[key] ?? key,
        x: s.x.slice(), y: scaled(s.y, panel.scale), connectgaps: false,
      };
    });
    const layout = themed(panelLayout(panel, this.flags), themeColors(this.grid));
    (first ? this.plotly.newPlot : this.plotly.react).call(this.plotly, div, data, layout, CONFIG);
  }
}

function flagLine(f: Flag): object {
  return {
    type: "line", xref: "x", yref: "paper", x0: f.step, x1: f.step, y0: 0, y1: 1,
    line: { color: "#d62728", dash: "dash", width: 1 },
  };
}
