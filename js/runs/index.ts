// The runs table (anywidget front end): every run in the runs folder, sortable, a checkbox per
// run, and Compare drawing the overlay Python computed (records/compare.py: the points, the EMA,
// the metrics, the plan diff). The view only orders rows and draws; it computes nothing shown.
//   traits it sets:  selected, metric, x, smooth, log_y (Python recomputes the overlay)
//   to Python:       {kind: "compare", names} | {kind: "refresh"} | {kind: "plotly"}
import { lazyPlot, loadPlotly, type AssetModel, type PlotLib } from "../common/plotly";
import { ensureStyle } from "../common/style";
import { onThemeChange, themeColors, themed } from "../common/theme";
import { STYLE } from "./style";
import type { Column, Model, Overlay, Row } from "./types";
import { el } from "../common/el";

export type { Model, Overlay, Row } from "./types";

const NUMERIC = new Set(["r", "learning_rate", "steps", "max_steps", "train_loss", "eval_loss", "eval_step", "duration_s"]);


/** `rows` ordered by `key` (numbers as numbers, unknown values last whichever the direction). */
export function sortRows(rows: Row[], key: string, dir: "asc" | "desc"): Row[] {
  const sign = dir === "asc" ? 1 : -1;
  return rows.slice().sort((a, b) => {
    const x = (a as any)[key], y = (b as any)[key];
    if (x === null || x === undefined || x === "") return y === null || y === undefined || y === "" ? 0 : 1;
    if (y === null || y === undefined || y === "") return -1;
    if (typeof x === "number" && typeof y === "number") return sign * (x - y);
    return sign * String(x).localeCompare(String(y));
  });
}

/** A cell's text: numbers to 4 significant digits (counts as they are). */
export function cellText(key: string, value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" && !Number.isInteger(value)) return Number(value.toPrecision(4)).toString();
  return String(value);
}

/** The plotly traces of an overlay: each run's smoothed curve, and its raw one faint behind it when smoothed. */
export function overlayTraces(o: Overlay): object[] {
  const out: object[] = [];
  o.traces.forEach((t, i) => {
    const color = PALETTE[i % PALETTE.length];
    if (o.smooth > 0) {
      out.push({ type: "scatter", mode: "lines", x: t.x, y: t.raw, name: t.name, showlegend: false,
        hoverinfo: "skip", line: { color, width: 1 }, opacity: 0.25 });
    }
    out.push({ type: "scatter", mode: t.x.length === 1 ? "lines+markers" : "lines", x: t.x, y: t.y, name: t.name,
      line: { color, width: 2 } });
  });
  return out;
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

export function mount(model: Model, root: HTMLElement, plotly: PlotLib): () => void {
  ensureStyle(root.ownerDocument, "runs", STYLE);
  const box = el("div", "jp-peft-runs", root);
  const head = el("div", "jp-peft-runs-head", box);
  const title = el("span", "jp-peft-runs-title", head);
  const refresh = el("button", "jp-peft-runs-refresh jp-mod-styled", head, "Refresh");
  const compare = el("button", "jp-peft-runs-compare jp-mod-styled", head, "Compare");
  const scroll = el("div", "jp-peft-runs-scroll", box);
  const table = el("table", "jp-peft-runs-table", scroll);
  const thead = el("thead", "", table);
  const tbody = el("tbody", "", table);
  const controls = el("div", "jp-peft-runs-controls", box);
  const metricLabel = el("label", "", controls, "metric ");
  const metric = el("select", "jp-peft-runs-metric", metricLabel);
  const xLabel = el("label", "", controls, "x ");
  const xSel = el("select", "jp-peft-runs-x", xLabel);
  for (const v of ["step", "time"]) el("option", "", xSel, v).value = v;
  const smoothLabel = el("label", "", controls, "smoothing ");
  const smooth = el("input", "jp-peft-runs-smooth", smoothLabel);
  Object.assign(smooth, { type: "range", min: "0", max: "0.99", step: "0.01" });
  const smoothText = el("span", "", smoothLabel);
  const logLabel = el("label", "", controls);
  const logY = el("input", "jp-peft-runs-logy", logLabel);
  logY.type = "checkbox";
  logLabel.append(" log y");
  const error = el("div", "jp-peft-runs-error", box);
  const chart = el("div", "jp-peft-runs-chart", box);
  const diff = el("div", "jp-peft-runs-diff", box);
  let drawn = false;
  let sort: { key: string; dir: "asc" | "desc" } | null = null;

  const selected = () => new Set(model.get("selected") ?? []);
  const setSelected = (names: string[]) => {
    model.set("selected", names);
    model.save_changes();
    compare.disabled = names.length === 0;
  };

  const drawHead = () => {
    thead.textContent = "";
    const tr = el("tr", "", thead);
    el("th", "", tr, "");
    for (const c of model.get("columns") ?? []) {
      const th = el("th", "", tr, c.label);
      th.dataset.key = c.key;
      if (sort?.key === c.key) th.dataset.sort = sort.dir;
      th.addEventListener("click", () => {
        sort = { key: c.key, dir: sort?.key === c.key && sort.dir === "asc" ? "desc" : "asc" };
        drawHead();
        drawBody();
      });
    }
  };
  const drawBody = () => {
    tbody.textContent = "";
    const columns: Column[] = model.get("columns") ?? [];
    const rows = sort ? sortRows(model.get("rows") ?? [], sort.key, sort.dir) : (model.get("rows") ?? []);
    const ticked = selected();
    for (const row of rows) {
      const tr = el("tr", "", tbody);
      tr.dataset.name = row.name;
      const box = el("input", "jp-peft-runs-tick", el("td", "", tr));
      box.type = "checkbox";
      box.checked = ticked.has(row.name);
      box.addEventListener("change", () => {
        const now = selected();
        if (box.checked) now.add(row.name);
        else now.delete(row.name);
        const order = (model.get("rows") ?? []).map((r) => r.name).filter((n) => now.has(n));
        setSelected(order);
      });
      for (const c of columns) {
        const value = (row as any)[c.key];
        const td = el("td", NUMERIC.has(c.key) ? "jp-peft-num" : c.key === "reason" ? "jp-peft-note" : "", tr,
          cellText(c.key, value));
        if (c.key === "state") td.dataset.state = String(value);
      }
    }
    compare.disabled = ticked.size === 0;
  };
  const drawOverlay = () => {
    const o = model.get("overlay") as Overlay;
    error.textContent = model.get("error") ?? "";
    if (!o || !o.traces) {
      if (drawn) plotly.purge(chart);
      drawn = false;
      diff.textContent = "";
      return;
    }
    metric.textContent = "";
    for (const m of o.metrics) el("option", "", metric, m).value = m;
    metric.value = o.metric;
    xSel.value = o.x;
    smooth.value = String(o.smooth);
    smoothText.textContent = ` ${o.smooth.toFixed(2)}`;
    logY.checked = o.log_y;
    const layout = themed({
      height: 320, margin: { l: 56, r: 12, t: 28, b: 36 }, title: { text: o.metric, font: { size: 12 }, x: 0.02 },
      xaxis: { title: { text: o.x === "step" ? "step" : "seconds" } },
      yaxis: { type: o.log_y ? "log" : "linear", exponentformat: "SI" },
      legend: { orientation: "h", y: -0.2 }, font: { size: 10 },
    }, themeColors(box));
    (drawn ? plotly.react : plotly.newPlot).call(plotly, chart, overlayTraces(o), layout, { displaylogo: false, responsive: true });
    drawn = true;
    diff.textContent = "";
    if (!o.diff.length) {
      el("div", "", diff, "The plans are the same.");
      return;
    }
    const t = el("table", "", diff);
    const hr = el("tr", "", el("thead", "", t));
    el("th", "", hr, "plan key");
    for (const n of o.names) el("th", "", hr, n);
    const body = el("tbody", "", t);
    for (const d of o.diff) {
      const tr = el("tr", "", body);
      el("td", "", tr, d.key);
      for (const v of d.values) el("td", "", tr, v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
    }
  };
  const onTitle = () => { title.textContent = `runs in ${model.get("runs_dir") ?? ""}`; };
  const onRows = () => { drawHead(); drawBody(); };
  const onCompare = () => model.send({ kind: "compare", names: model.get("selected") ?? [] });
  const onRefresh = () => model.send({ kind: "refresh" });
  const setTrait = (name: "metric" | "x" | "smooth" | "log_y", value: any) => { model.set(name, value); model.save_changes(); };
  const onMetric = () => setTrait("metric", metric.value);
  const onX = () => setTrait("x", xSel.value as "step" | "time");
  const onSmooth = () => setTrait("smooth", Number(smooth.value));
  const onLog = () => setTrait("log_y", logY.checked);

  const handlers: [string, (...args: any[]) => void][] = [
    ["change:rows", onRows], ["change:columns", onRows], ["change:selected", drawBody], ["change:overlay", drawOverlay],
    ["change:error", drawOverlay], ["change:runs_dir", onTitle],
  ];
  for (const [event, cb] of handlers) model.on(event, cb);
  const inputs: [HTMLElement, string, () => void][] = [
    [compare, "click", onCompare], [refresh, "click", onRefresh], [metric, "change", onMetric], [xSel, "change", onX],
    [smooth, "change", onSmooth], [logY, "change", onLog],
  ];
  for (const [node, event, cb] of inputs) node.addEventListener(event, cb);
  const unwatch = onThemeChange(root.ownerDocument, () => { if (drawn) drawOverlay(); });
  onTitle(); onRows(); drawOverlay();

  return () => {
    for (const [event, cb] of handlers) model.off(event, cb);
    for (const [node, event, cb] of inputs) node.removeEventListener(event, cb);
    unwatch();
    if (drawn) plotly.purge(chart);
    box.remove();
  };
}

export default {
  render({ model, el: root }: { model: Model; el: HTMLElement }) {
    return mount(model, root, lazyPlot(loadPlotly(model as unknown as AssetModel)));
  },
};
