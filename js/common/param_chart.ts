// The trainable-parameter chart of the studio and the dashboard: per group its frozen
// weights and the trainable parameters an adapter adds, two bars on a log axis. Python makes
// the data (jupyter_peft/ui/param_chart.py); this only draws it, inside our own widget, with the
// page's one plotly (js/common/plotly.ts) and the colours of JupyterLab's theme.

import { themeColors, themed } from "./theme";

/** What the chart needs of plotly (the dashboard's tests pass a recording stand-in). */
export interface PlotLike {
  react(div: HTMLElement, data: object[], layout: object, config: object): unknown;
  purge(div: HTMLElement): void;
}

export interface ParamRow {
  role: string;
  frozen: number;
  trainable: number;
  frozen_text: string;
  trainable_text: string;
}

/** The chart's data as Python sends it (jupyter_peft/ui/param_chart.py `param_chart`); checked
 * against what Python sends by tests/ui/test_contract.py. */
export interface ParamChartData {
  title: string;
  trainable: number;
  total: number;
  rows: ParamRow[];
}

export const FROZEN_COLOR = "#b8c0cc";
export const TRAINABLE_COLOR = "#e8710a";

/** Plotly reads a few HTML-like tags in labels (<b>, <br>, <a>): labels are module names,
 * user-controlled, so they go in escaped and show as the literal text. */
export function plotlyText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The two bar traces; a log axis cannot show 0, so empty bars go in as null. */
export function paramTraces(data: ParamChartData): object[] {
  const rows = data.rows ?? [];
  const x = rows.map((r) => plotlyText(r.role));
  const bar = (name: "frozen" | "trainable", color: string) => ({
    type: "bar",
    name,
    x,
    y: rows.map((r) => (r[name] > 0 ? r[name] : null)),
    customdata: rows.map((r) => plotlyText(name === "frozen" ? r.frozen_text : r.trainable_text)),
    marker: { color },
    hovertemplate: `%{x}<br>${name} %{customdata}<extra></extra>`,
  });
  return [bar("frozen", FROZEN_COLOR), bar("trainable", TRAINABLE_COLOR)];
}

export function paramLayout(data: ParamChartData): Record<string, unknown> {
  return {
    title: { text: plotlyText(data.title ?? ""), font: { size: 12 }, x: 0.01 },
    barmode: "group",
    height: 260,
    margin: { l: 56, r: 10, t: 48, b: 10 },
    yaxis: { type: "log", dtick: 1, title: { text: "parameters" }, exponentformat: "SI" }, // powers of ten only
    xaxis: { tickangle: -30, automargin: true },
    legend: { orientation: "h", x: 1, xanchor: "right", y: 1.16 },
    font: { size: 11 },
  };
}

export class ParamChart {
  readonly el: HTMLDivElement;
  private drawn = false;
  private data: ParamChartData | null = null;

  constructor(private plotly: PlotLike) {
    this.el = document.createElement("div");
    this.el.className = "jp-peft-param-chart";
  }

  update(data: ParamChartData): void {
    this.data = data;
    const layout = themed(paramLayout(data), themeColors(this.el.isConnected ? this.el : this.el.ownerDocument.body));
    this.plotly.react(this.el, paramTraces(data), layout, { displayModeBar: false, responsive: true });
    this.drawn = true;
  }

  /** Draw the last data again (the theme changed). */
  redraw(): void {
    if (this.data) this.update(this.data);
  }

  purge(): void {
    if (this.drawn) this.plotly.purge(this.el);
    this.drawn = false;
  }
}
