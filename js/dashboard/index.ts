// The live training dashboard (anywidget front end). A view: the Python Dashboard computes
// every number; this draws status, progress, buttons and plotly charts, and streams points
// in with Plotly.extendTraces. Messages are routed on `kind`:
//   from Python: {kind: "points", series}  new points only;  {kind: "reset", series}  all so far
//   to Python:   {kind: "stop"} | {kind: "save"} | {kind: "sync"} (this view wants the history)
import Plotly from "plotly.js-basic-dist-min";
import { ParamChart, type ParamChartData } from "../common/param_chart";
import { Charts, type Flag, type Panel, type PlotLib } from "./charts";
import { merge, type SeriesMap } from "./series";

/** At most this often the charts are redrawn: points arriving in between are drawn together,
 * which keeps a slow or busy browser responsive whatever the kernel's update rate. */
export const DRAW_EVERY_MS = 250;

export interface Model {
  get(name: string): any;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event: string, cb: (...args: any[]) => void): void;
  send(content: object): void;
}

export interface Status {
  state?: string;
  title?: string;
  message?: string;
  error?: string;
}

export interface Progress {
  percent?: number | null;
  text?: string;
}

const CSS = `
.jp-peft-dashboard { font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px;
  color: var(--jp-ui-font-color1, #222); }
.jp-peft-head { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.jp-peft-title { font-weight: bold; }
.jp-peft-state { padding: 1px 8px; border-radius: 10px; background: #999; color: white; font-size: 11px; }
.jp-peft-state[data-state="running"] { background: #1f77b4; }
.jp-peft-state[data-state="stopping"] { background: #ff7f0e; }
.jp-peft-state[data-state="finished"] { background: #2ca02c; }
.jp-peft-state[data-state="stopped"] { background: #7f7f7f; }
.jp-peft-state[data-state="failed"] { background: #d62728; }
.jp-peft-progress { height: 6px; background: var(--jp-layout-color3, #ddd); border-radius: 3px; margin: 6px 0 2px; }
.jp-peft-bar { height: 100%; width: 0; background: #1f77b4; border-radius: 3px; transition: width 0.2s; }
.jp-peft-muted { color: var(--jp-ui-font-color2, #555); }
.jp-peft-error, .jp-peft-flags { color: #d62728; white-space: pre-wrap; }
.jp-peft-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 4px; }
.jp-peft-chart { min-height: 220px; }
`;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, parent: HTMLElement, text = "") {
  const node = document.createElement(tag);
  node.className = cls;
  node.textContent = text;
  parent.appendChild(node);
  return node;
}

/** Build the view in `root`; returns the cleanup anywidget calls when the view goes. */
export function mount(model: Model, root: HTMLElement, plotly: PlotLib): () => void {
  const box = el("div", "jp-peft-dashboard", root);
  el("style", "", box, CSS);
  const head = el("div", "jp-peft-head", box);
  const title = el("span", "jp-peft-title", head);
  const state = el("span", "jp-peft-state", head);
  const stop = el("button", "jp-peft-stop jp-mod-styled", head, "Stop");
  const save = el("button", "jp-peft-save jp-mod-styled", head, "Save now");
  const bar = el("div", "jp-peft-bar", el("div", "jp-peft-progress", box));
  const progress = el("div", "jp-peft-progress-text jp-peft-muted", box);
  const message = el("div", "jp-peft-message jp-peft-muted", box);
  const error = el("div", "jp-peft-error", box);
  const flagList = el("div", "jp-peft-flags", box);
  const memory = el("div", "jp-peft-memory jp-peft-muted", box);
  const grid = el("div", "jp-peft-grid", box);
  const params = new ParamChart(plotly);
  params.el.classList.add("jp-peft-params");
  box.appendChild(params.el);
  const charts = new Charts(grid, plotly, () => model.get("max_points") ?? 2000);

  const onStatus = () => {
    const s: Status = model.get("status") ?? {};
    title.textContent = s.title ?? "";
    state.textContent = s.state ?? "";
    state.dataset.state = s.state ?? "";
    message.textContent = s.message ?? "";
    error.textContent = s.error ?? "";
    stop.disabled = s.state !== "running";
    save.disabled = s.state !== "running";
  };
  const onProgress = () => {
    const p: Progress = model.get("progress") ?? {};
    bar.style.width = `${Math.min(100, Math.max(0, p.percent ?? 0))}%`;
    progress.textContent = p.text ?? "";
  };
  const onPanels = () => charts.setPanels((model.get("panels") ?? []) as Panel[]);
  const onFlags = () => {
    const flags = (model.get("flags") ?? []) as Flag[];
    flagList.textContent = flags.map((f) => `${f.key} = ${f.value} at step ${f.step}`).join("\n");
    charts.setFlags(flags);
  };
  const onMemory = () => {
    memory.textContent = (model.get("memory") ?? {}).line ?? "";
  };
  const onParams = () => {
    const p: ParamChartData = model.get("params") ?? {};
    if (p.rows?.length) params.update(p);
  };
  let queued: SeriesMap | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastDraw = 0;
  const draw = () => {
    timer = undefined;
    lastDraw = Date.now();
    if (queued) charts.extend(queued);
    queued = null;
  };
  const onMsg = (msg: { kind?: string; series?: SeriesMap }) => {
    if (msg?.kind === "points" && msg.series) {
      queued = merge(queued ?? {}, msg.series);
      timer ??= setTimeout(draw, Math.max(0, lastDraw + DRAW_EVERY_MS - Date.now()));
    } else if (msg?.kind === "reset" && msg.series) {
      queued = null; // the reset holds them
      charts.reset(msg.series);
    }
  };
  const onStop = () => model.send({ kind: "stop" });
  const onSave = () => model.send({ kind: "save" });

  const handlers: [string, (...args: any[]) => void][] = [
    ["change:status", onStatus], ["change:progress", onProgress], ["change:panels", onPanels], ["change:flags", onFlags],
    ["change:memory", onMemory], ["change:params", onParams], ["msg:custom", onMsg],
  ];
  for (const [event, cb] of handlers) model.on(event, cb);
  stop.addEventListener("click", onStop);
  save.addEventListener("click", onSave);
  onStatus(); onProgress(); onPanels(); onFlags(); onMemory(); onParams();
  model.send({ kind: "sync" }); // the history so far arrives as one reset

  return () => {
    clearTimeout(timer);
    for (const [event, cb] of handlers) model.off(event, cb);
    stop.removeEventListener("click", onStop);
    save.removeEventListener("click", onSave);
    charts.purge();
    params.purge();
    box.remove();
  };
}

export default {
  render({ model, el: root }: { model: Model; el: HTMLElement }) {
    return mount(model, root, Plotly as PlotLib);
  },
};
