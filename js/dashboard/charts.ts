// The dashboard's plotly charts: one small chart per panel, fed incrementally.
// New points go in with Plotly.extendTraces; a whole redraw (Plotly.react) happens only when a
// panel gains a trace, a series is thinned, or a reset arrives.

import { append, fromPair, type Series, type SeriesMap } from "./series";

/** The part of plotly's API the dashboard uses (so tests can pass a recording stand-in). */
export interface PlotLib {
  newPlot(div: HTMLElement, data: object[], layout: object, config: object): unknown;
  react(div: HTMLElement, data: object[], layout: object, config: object): unknown;
  extendTraces(div: HTMLElement, update: { x: number[][]; y: (number | null)[][] }, indices: number[]): unknown;
  purge(div: HTMLElement): void;
}

export interface Panel {
  id: string;
  title: string;
  keys: string[];
  log_y: boolean;
}

export interface Flag {
  step: number;
  key: string;
  value: string;
}

const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
const BASE_LAYOUT = {
  height: 220,
  margin: { l: 56, r: 12, t: 28, b: 32 },
  showlegend: true,
  legend: { orientation: "h", x: 1, xanchor: "right", y: 1.18, font: { size: 10 } },
  xaxis: { title: { text: "step", font: { size: 10 } } },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  font: { size: 10 },
};

export class Charts {
  private series = new Map<string, Series>();
  private drawn = new Map<string, { div: HTMLElement; panel: Panel }>();
  private flags: Flag[] = [];

  constructor(
    private grid: HTMLElement,
    private plotly: PlotLib,
    private maxPoints: () => number,
  ) {}

  /** Make sure every panel has its chart, with its current traces. */
  setPanels(panels: Panel[]): void {
    for (const panel of panels) {
      const known = this.drawn.get(panel.id);
      if (known && known.panel.keys.join() === panel.keys.join()) continue;
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
      if (panel.keys.some((k) => thinned.has(k))) {
        this.redraw(id, false);
        continue;
      }
      const idx = panel.keys.map((k, i) => (map[k] ? i : -1)).filter((i) => i >= 0);
      if (!idx.length) continue;
      const x = idx.map((i) => map[panel.keys[i]][0]);
      const y = idx.map((i) => map[panel.keys[i]][1]);
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
    const data = panel.keys.map((key) => {
      const s = this.series.get(key) ?? { x: [], y: [] };
      // copies: plotly extends its own arrays, ours are thinned separately
      return { type: "scatter", mode: "lines", name: key, x: s.x.slice(), y: s.y.slice(), connectgaps: false };
    });
    const shapes = id === "loss" ? this.flags.map(flagLine) : [];
    const layout = {
      ...BASE_LAYOUT,
      title: { text: panel.title, font: { size: 12 }, x: 0.02 },
      yaxis: { type: panel.log_y ? "log" : "linear", exponentformat: "SI" },
      shapes,
    };
    (first ? this.plotly.newPlot : this.plotly.react).call(this.plotly, div, data, layout, CONFIG);
  }
}

function flagLine(f: Flag): object {
  return {
    type: "line", xref: "x", yref: "paper", x0: f.step, x1: f.step, y0: 0, y1: 1,
    line: { color: "#d62728", dash: "dash", width: 1 },
  };
}
