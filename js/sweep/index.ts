// The live sweep dashboard (anywidget front end). A view: Python (ui/sweep/view.py) computes every
// number from the Optuna study; this draws the state, progress and ETA, the best trial, every
// trial's eval curve overlaid (pruned ones grey and dashed, the best one thick), the parallel
// coordinates of the complete trials (scatter lines across axes, coloured best to worst), and
// Stop / Write cell (the jupyter-peft extension inserts the best plan's cell; else it is shown to copy).
//   to Python: {kind: "stop"} | {kind: "plotly"}
import { lazyPlot, loadPlotly, type AssetModel, type PlotLib } from "../common/plotly";
import { ensureStyle } from "../common/style";
import { onThemeChange, themeColors, themed } from "../common/theme";
import { copyText, insertCell } from "../studio/cell";
import { STYLE } from "./style";
import type { Model, Parcoords, Status, Trial } from "./types";
import { el } from "../common/el";

export type { Model, Parcoords, Trial } from "./types";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"];
const PRUNED = "#b0b0b0";
const FAILED = "#e8a0a0";


/** The curves chart's traces: one per trial that reported, pruned greyed, the best thick. */
export function curveTraces(trials: Trial[], best: number | undefined): object[] {
  return trials.filter((t) => t.curve.x.length).map((t, i) => {
    const grey = t.state === "pruned" ? PRUNED : t.state === "failed" ? FAILED : null;
    const isBest = t.number === best;
    return {
      type: "scatter", mode: t.curve.x.length === 1 ? "lines+markers" : "lines", x: t.curve.x, y: t.curve.y,
      name: `trial ${t.number}${t.state === "pruned" ? " (pruned)" : isBest ? " (best)" : ""}`,
      line: { color: grey ?? PALETTE[i % PALETTE.length], width: isBest ? 3.5 : 1.5, dash: t.state === "pruned" ? "dot" : "solid" },
      opacity: grey ? 0.8 : 1,
    };
  });
}

/** Best (t = 0) to worst (t = 1): green to grey-blue. */
export function lineColor(t: number): string {
  const a = [44, 160, 44], b = [170, 180, 200];
  const c = a.map((v, i) => Math.round(v + (b[i] - v) * Math.min(1, Math.max(0, t))));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** The parallel coordinates as scatter traces (x: axis index, y: 0..1) and the axes as shapes and labels. */
export function parcoordsFigure(p: Parcoords): { data: object[]; shapes: object[]; annotations: object[] } {
  const xs = p.axes.map((_, i) => i);
  const data = p.lines.slice().sort((a, b) => b.t - a.t).map((line) => ({
    type: "scatter", mode: "lines+markers", x: xs, y: line.y, name: `trial ${line.number}`, showlegend: false,
    line: { color: lineColor(line.t), width: line.t === 0 ? 3 : 1.5 }, marker: { size: 4 },
    hovertemplate: `trial ${line.number}: ${p.metric} ${line.value.toPrecision(4)}<extra></extra>`,
  }));
  const shapes = xs.map((x) => ({ type: "line", x0: x, x1: x, y0: 0, y1: 1, line: { color: "#888", width: 1 } }));
  const annotations: object[] = [];
  p.axes.forEach((axis, i) => {
    annotations.push({ x: i, y: 1.1, text: `<b>${axis.label}</b>`, showarrow: false, font: { size: 11 } });
    for (const tick of axis.ticks) annotations.push({ x: i, y: tick.y, text: tick.text, showarrow: false, xanchor: "left", xshift: 3, font: { size: 9 } });
  });
  return { data, shapes, annotations };
}

export function mount(model: Model, root: HTMLElement, plotly: PlotLib): () => void {
  ensureStyle(root.ownerDocument, "sweep", STYLE);
  const box = el("div", "jp-peft-sweep", root);
  const head = el("div", "jp-peft-sweep-head", box);
  const title = el("span", "jp-peft-sweep-title", head);
  const state = el("span", "jp-peft-sweep-state", head);
  const stop = el("button", "jp-peft-sweep-stop jp-mod-styled", head, "Stop");
  const write = el("button", "jp-peft-sweep-write jp-mod-styled", head, "Write cell");
  const bar = el("div", "jp-peft-sweep-progress-fill", el("div", "jp-peft-sweep-progress", box));
  const progress = el("div", "jp-peft-sweep-progress-text jp-peft-sweep-muted", box);
  const message = el("div", "jp-peft-sweep-message jp-peft-sweep-muted", box);
  const error = el("div", "jp-peft-sweep-error", box);
  const best = el("div", "jp-peft-sweep-best", box);
  const charts = el("div", "jp-peft-sweep-charts", box);
  const curves = el("div", "jp-peft-sweep-curves", charts);
  const parallel = el("div", "jp-peft-sweep-parcoords", charts);
  const copyBox = el("div", "jp-peft-sweep-copy", box);
  copyBox.hidden = true;
  const drawn = new Set<HTMLElement>();

  const plot = (div: HTMLElement, data: object[], layout: Record<string, unknown>) => {
    const themedLayout = themed(layout, themeColors(box));
    (drawn.has(div) ? plotly.react : plotly.newPlot).call(plotly, div, data, themedLayout, { displaylogo: false, responsive: true });
    drawn.add(div);
  };
  const onStatus = () => {
    const s: Partial<Status> = model.get("status") ?? {};
    title.textContent = s.title ?? "";
    state.textContent = s.state ?? "";
    state.dataset.state = s.state ?? "";
    message.textContent = s.message ?? "";
    error.textContent = s.error ?? "";
    stop.disabled = s.state !== "running";
  };
  const onProgress = () => {
    const p = model.get("progress");
    bar.style.width = `${Math.min(100, Math.max(0, p?.percent ?? 0))}%`;
    progress.textContent = p?.text ?? "";
  };
  const onBest = () => {
    const b = model.get("best");
    const metric = model.get("status")?.metric ?? "";
    best.textContent = b && b.number !== undefined
      ? `best so far: trial ${b.number} · ${metric} ${b.value!.toPrecision(4)} · ` +
        Object.entries(b.params ?? {}).map(([k, v]) => `${k}=${v}`).join(", ")
      : "no complete trial yet";
    write.disabled = !model.get("cell");
  };
  const onTrials = () => {
    const trials = model.get("trials") ?? [];
    const metric = model.get("status")?.metric ?? "metric";
    plot(curves, curveTraces(trials, model.get("best")?.number), {
      height: 300, margin: { l: 56, r: 12, t: 28, b: 36 }, title: { text: `${metric} by step, every trial`, font: { size: 12 }, x: 0.02 },
      xaxis: { title: { text: "step" } }, yaxis: { exponentformat: "SI" }, legend: { font: { size: 9 } }, font: { size: 10 },
    });
    onBest();
  };
  const onParcoords = () => {
    const p = model.get("parcoords");
    if (!p || !p.axes) {
      parallel.hidden = true;
      return;
    }
    parallel.hidden = false;
    const fig = parcoordsFigure(p as Parcoords);
    plot(parallel, fig.data, {
      height: 300, margin: { l: 20, r: 50, t: 48, b: 20 }, title: { text: "parameters vs metric (complete trials)", font: { size: 12 }, x: 0.02 },
      xaxis: { visible: false, range: [-0.2, p.axes.length - 0.6] }, yaxis: { visible: false, range: [-0.05, 1.15] },
      shapes: fig.shapes, annotations: fig.annotations, font: { size: 10 },
    });
  };
  const onStop = () => model.send({ kind: "stop" });
  const onWrite = () => {
    const cell = model.get("cell");
    if (!cell) return;
    if (insertCell(box, cell)) return;
    copyBox.hidden = false; // no extension (VS Code, Colab): the text to copy
    copyBox.textContent = "";
    const pre = el("div", "jp-peft-sweep-cell", copyBox, cell);
    const copy = el("button", "jp-peft-sweep-copy-button jp-mod-styled", copyBox, "Copy");
    copy.addEventListener("click", () => { void copyText(cell, pre).then((ok) => { copy.textContent = ok ? "Copied" : "Selected: Ctrl+C"; }); });
  };

  const handlers: [string, (...args: any[]) => void][] = [
    ["change:status", onStatus], ["change:progress", onProgress], ["change:trials", onTrials],
    ["change:best", onTrials], ["change:parcoords", onParcoords], ["change:cell", onBest],
  ];
  for (const [event, cb] of handlers) model.on(event, cb);
  stop.addEventListener("click", onStop);
  write.addEventListener("click", onWrite);
  const unwatch = onThemeChange(root.ownerDocument, () => { onTrials(); onParcoords(); });
  onStatus(); onProgress(); onTrials(); onParcoords();

  return () => {
    for (const [event, cb] of handlers) model.off(event, cb);
    stop.removeEventListener("click", onStop);
    write.removeEventListener("click", onWrite);
    unwatch();
    for (const div of drawn) plotly.purge(div);
    box.remove();
  };
}

export default {
  render({ model, el: root }: { model: Model; el: HTMLElement }) {
    return mount(model, root, lazyPlot(loadPlotly(model as unknown as AssetModel)));
  },
};
