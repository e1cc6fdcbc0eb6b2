// The live training dashboard (anywidget front end). A view: the Python Dashboard computes
// every number; this draws status, progress, buttons and plotly charts, and streams points
// in with Plotly.extendTraces. Messages are routed on `kind`:
//   from Python: {kind: "points", series}  new points only;  {kind: "reset", series}  all so far
//   to Python:   {kind: "stop"} | {kind: "save"} | {kind: "resume"} | {kind: "sync"} (this view
//                wants the history) | {kind: "plotly"} (the page has no plotly yet: js/common/plotly.ts)
import { ParamChart, type ParamChartData } from "../common/param_chart";
import { lazyPlot, loadPlotly, type AssetModel } from "../common/plotly";
import { ensureStyle } from "../common/style";
import { onThemeChange } from "../common/theme";
import { Charts, type PlotLib } from "./charts";
import { heatmapPart } from "./heatmap";
import { merge, type SeriesMap } from "./series";
import { samplesPart } from "./samples";
import { STYLE } from "./style";
import type { FromPython, Model, Progress, Status } from "./types";
import { el } from "../common/el";

export type { Model, Progress, Status } from "./types";

/** At most this often the charts are redrawn: points arriving in between are drawn together,
 * which keeps a slow or busy browser responsive whatever the kernel's update rate. */
export const DRAW_EVERY_MS = 250;


/** A part of the dashboard below the charts (the samples table, the module heatmap), in its own
 * file: it gets the custom messages the charts do not take (`onMsg` returns whether it took one). */
export interface Part {
  onMsg(msg: any): boolean;
  redraw?(): void; // the theme changed
  dispose(): void;
}
export type PartFactory = (model: Model, box: HTMLElement, plotly: PlotLib) => Part;
/** The parts, in display order: each file adds its factory here (one import, one entry). */
export const PARTS: PartFactory[] = [];
PARTS.push(samplesPart); // samples while training (samples.ts)
PARTS.push(heatmapPart); // per-module signals (heatmap.ts)

/** Build the view in `root`; returns the cleanup anywidget calls when the view goes. */
export function mount(model: Model, root: HTMLElement, plotly: PlotLib): () => void {
  ensureStyle(root.ownerDocument, "dashboard", STYLE); // once per page, scoped under .jp-peft-dashboard
  const box = el("div", "jp-peft-dashboard", root);
  const head = el("div", "jp-peft-head", box);
  const title = el("span", "jp-peft-title", head);
  const state = el("span", "jp-peft-state", head);
  const stop = el("button", "jp-peft-stop jp-mod-styled", head, "Stop");
  const save = el("button", "jp-peft-save jp-mod-styled", head, "Save now");
  const resume = el("button", "jp-peft-resume jp-mod-styled", head, "Resume");
  const bar = el("div", "jp-peft-progress-fill", el("div", "jp-peft-progress", box));
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
  const parts = PARTS.map((make) => make(model, box, plotly));

  const onStatus = () => {
    const s: Partial<Status> = model.get("status") ?? {};
    title.textContent = s.title ?? "";
    state.textContent = s.state ?? "";
    state.dataset.state = s.state ?? "";
    message.textContent = s.message ?? "";
    error.textContent = s.error ?? "";
    stop.disabled = s.state !== "running";
    save.disabled = s.state !== "running";
    resume.disabled = !s.resume?.enabled;
    resume.hidden = !s.resume?.shown;
    resume.title = s.resume?.title ?? "";
  };
  const onProgress = () => {
    const p: Partial<Progress> = model.get("progress") ?? {};
    bar.style.width = `${Math.min(100, Math.max(0, p.percent ?? 0))}%`;
    progress.textContent = p.text ?? "";
  };
  const onPanels = () => charts.setPanels(model.get("panels") ?? []);
  const onFlags = () => {
    const flags = model.get("flags") ?? [];
    flagList.textContent = flags.map((f) => `${f.key} = ${f.value} at step ${f.step}`).join("\n");
    charts.setFlags(flags);
  };
  const onMemory = () => {
    memory.textContent = model.get("memory")?.line ?? "";
  };
  const onParams = () => {
    const p = model.get("params");
    if (p?.rows?.length) params.update(p as ParamChartData); // not {}: a model with adapters
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
  const onMsg = (msg: FromPython) => {
    if (msg?.kind === "points" && msg.series) {
      queued = merge(queued ?? {}, msg.series);
      timer ??= setTimeout(draw, Math.max(0, lastDraw + DRAW_EVERY_MS - Date.now()));
    } else if (msg?.kind === "reset" && msg.series) {
      queued = null; // the reset holds them
      charts.reset(msg.series);
    } else {
      for (const part of parts) if (part.onMsg(msg)) break;
    }
  };
  const onStop = () => model.send({ kind: "stop" });
  const onSave = () => model.send({ kind: "save" });
  const onResume = () => {
    resume.disabled = true; // until Python says what the new run is
    model.send({ kind: "resume" });
  };

  const handlers: [string, (...args: any[]) => void][] = [
    ["change:status", onStatus], ["change:progress", onProgress], ["change:panels", onPanels], ["change:flags", onFlags],
    ["change:memory", onMemory], ["change:params", onParams], ["msg:custom", onMsg],
  ];
  for (const [event, cb] of handlers) model.on(event, cb);
  stop.addEventListener("click", onStop);
  save.addEventListener("click", onSave);
  resume.addEventListener("click", onResume);
  const unwatch = onThemeChange(root.ownerDocument, () => {
    charts.redrawAll();
    params.redraw();
    for (const part of parts) part.redraw?.();
  });
  onStatus(); onProgress(); onPanels(); onFlags(); onMemory(); onParams();
  model.send({ kind: "sync" }); // the history so far arrives as one reset

  return () => {
    clearTimeout(timer);
    for (const [event, cb] of handlers) model.off(event, cb);
    stop.removeEventListener("click", onStop);
    save.removeEventListener("click", onSave);
    resume.removeEventListener("click", onResume);
    unwatch();
    charts.purge();
    params.purge();
    for (const part of parts) part.dispose();
    box.remove();
  };
}

export default {
  render({ model, el: root }: { model: Model; el: HTMLElement }) {
    return mount(model, root, lazyPlot(loadPlotly(model as unknown as AssetModel)));
  },
};
