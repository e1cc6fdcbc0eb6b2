// Trainable vs frozen parameters per group: a plotly bar chart inside our own widget (no
// FigureWidget: plotly.js-basic is bundled once, and updates send two short arrays).

import Plotly from "plotly.js-basic-dist-min";
import type { State } from "./types";

/** Plotly reads a few HTML-like tags in labels (<b>, <br>, <a>): labels are module names,
 * user-controlled, so they go in escaped and show as the literal text. */
export function plotlyText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function chartData(chart: State["chart"]): { x: string[]; frozen: number[]; trainable: number[] } {
  const x = (chart.labels ?? []).map(plotlyText);
  // a log axis cannot show 0: empty bars go in as null
  const clean = (v: number[] | undefined) => (v ?? []).map((n) => (n > 0 ? n : null) as number);
  return { x, frozen: clean(chart.frozen), trainable: clean(chart.trainable) };
}

export class Chart {
  readonly el: HTMLDivElement;
  private drawn = false;

  constructor() {
    this.el = document.createElement("div");
    this.el.className = "jp-peft-chart";
  }

  update(chart: State["chart"]): void {
    const { x, frozen, trainable } = chartData(chart);
    const traces = [
      { type: "bar", name: "frozen", x, y: frozen, marker: { color: "#b8c0cc" }, hovertemplate: "%{x}<br>frozen %{y:,}<extra></extra>" },
      { type: "bar", name: "trainable", x, y: trainable, marker: { color: "#e8710a" }, hovertemplate: "%{x}<br>trainable %{y:,}<extra></extra>" },
    ];
    const layout = {
      barmode: "group",
      height: 240,
      margin: { l: 56, r: 10, t: 24, b: 10 },
      yaxis: { type: "log", dtick: 1, title: { text: "parameters" }, exponentformat: "SI" },  // powers of ten only
      xaxis: { tickangle: -30, automargin: true },
      legend: { orientation: "h", y: 1.12 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { size: 11 },
    };
    Plotly.react(this.el, traces, layout, { displayModeBar: false, responsive: true });
    this.drawn = true;
  }

  purge(): void {
    if (this.drawn) Plotly.purge(this.el);
  }
}
