// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Panel, PlotLib } from "./charts";
import { DRAW_EVERY_MS, mount } from "./index";
import { FakeModel } from "../common/fake_model";


/** Records what the view asks plotly to draw: per div, its traces' points. */
class RecordingPlot implements PlotLib {
  calls: string[] = [];
  traces = new Map<HTMLElement, { x: number[]; y: (number | null)[] }[]>();
  layouts = new Map<HTMLElement, any>();
  newPlot(div: HTMLElement, data: any[], layout: object) { this.draw("newPlot", div, data, layout); }
  react(div: HTMLElement, data: any[], layout: object) { this.draw("react", div, data, layout); }
  extendTraces(div: HTMLElement, update: { x: number[][]; y: (number | null)[][] }, idx: number[]) {
    this.calls.push("extendTraces");
    idx.forEach((t, j) => {
      const trace = this.traces.get(div)![t];
      trace.x = trace.x.concat(update.x[j]);
      trace.y = trace.y.concat(update.y[j]);
    });
  }
  purge(div: HTMLElement) { this.calls.push("purge"); this.traces.delete(div); }
  modes = new Map<HTMLElement, string[]>();
  private draw(call: string, div: HTMLElement, data: any[], layout: object) {
    this.calls.push(call);
    this.modes.set(div, data.map((d) => d.mode));
    this.traces.set(div, data.map((d) => ({ x: d.x, y: d.y })));
    this.layouts.set(div, layout);
  }
}

/** A panel as view.panels sends it. */
function panel(keys: string[], extra: Partial<Panel> = {}): Panel {
  const labels = Object.fromEntries(keys.map((k) => [k, k === "loss" ? "train" : k === "eval_loss" ? "eval" : k]));
  return { id: "loss", title: "loss (train)", keys, log_y: false, labels, unit: "", scale: 1, from_zero: false, ...extra };
}

function setup(extra: Record<string, any> = {}) {
  const model = new FakeModel({
    status: { state: "running", title: "sft run", message: "", error: "" },
    progress: { percent: 40, text: "step 4/10" },
    panels: [panel(["loss"])],
    flags: [], params: {},
    memory: { label: "process memory (RSS)", text: "600 MiB", estimate_text: "", line: "process memory (RSS): 600 MiB" },
    max_points: 50, ...extra,
  });
  const root = document.createElement("div");
  const plot = new RecordingPlot();
  const cleanup = mount(model, root, plot);
  const lossDiv = root.querySelector<HTMLElement>('[data-panel="loss"]')!;
  return { model, root, plot, cleanup, lossDiv };
}

describe("dashboard view", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("asks for the history, then draws a reset and extends with new points only", () => {
    const { model, plot, lossDiv } = setup();
    expect(model.sent).toEqual([{ kind: "sync" }]);
    model.emit("msg:custom", { kind: "reset", series: { loss: [[1, 2], [3.0, 2.5]] } });
    model.emit("msg:custom", { kind: "points", series: { loss: [[3], [2.25]] } });
    vi.advanceTimersByTime(DRAW_EVERY_MS);
    expect(plot.traces.get(lossDiv)![0]).toEqual({ x: [1, 2, 3], y: [3.0, 2.5, 2.25] });
    expect(plot.calls.filter((c) => c === "extendTraces")).toHaveLength(1);
  });

  it("draws points arriving close together in one go", () => {
    const { model, plot, lossDiv } = setup();
    for (let step = 1; step <= 5; step++) model.emit("msg:custom", { kind: "points", series: { loss: [[step], [1 / step]] } });
    vi.advanceTimersByTime(DRAW_EVERY_MS);
    expect(plot.calls.filter((c) => c === "extendTraces")).toHaveLength(1);
    expect(plot.traces.get(lossDiv)![0].x).toEqual([1, 2, 3, 4, 5]);
  });

  it("keeps at most max_points per trace over a long run", () => {
    const { model, plot, lossDiv } = setup();
    for (let step = 1; step <= 1000; step += 2) {
      model.emit("msg:custom", { kind: "points", series: { loss: [[step, step + 1], [1, 1]] } });
      vi.advanceTimersByTime(DRAW_EVERY_MS);
    }
    const trace = plot.traces.get(lossDiv)![0];
    expect(trace.x.length).toBeLessThanOrEqual(50);
    expect(trace.x[trace.x.length - 1]).toBe(1000);
  });

  it("shows status and memory from the traits, and a new trace when a panel gains a key", () => {
    const { model, root, plot, lossDiv } = setup();
    expect(root.querySelector(".jp-peft-progress-text")!.textContent).toBe("step 4/10");
    expect(root.querySelector<HTMLElement>(".jp-peft-progress-fill")!.style.width).toBe("40%");
    expect(root.querySelector(".jp-peft-memory")!.textContent).toBe("process memory (RSS): 600 MiB");
    model.set("panels", [panel(["loss", "eval_loss"])]);
    expect(plot.traces.get(lossDiv)).toHaveLength(2);
  });

  it("marks NaN steps on the loss chart and lists them", () => {
    const { model, root, plot, lossDiv } = setup();
    model.set("flags", [{ step: 7, key: "loss", value: "nan" }]);
    expect(root.querySelector(".jp-peft-flags")!.textContent).toBe("loss = nan at step 7");
    expect(plot.layouts.get(lossDiv).shapes[0]).toMatchObject({ x0: 7, x1: 7 });
  });

  it("sends stop and save, and disables them once the run is over", () => {
    const { model, root } = setup();
    root.querySelector<HTMLButtonElement>(".jp-peft-stop")!.click();
    root.querySelector<HTMLButtonElement>(".jp-peft-save")!.click();
    expect(model.sent.slice(1)).toEqual([{ kind: "stop" }, { kind: "save" }]);
    model.set("status", { state: "stopped" });
    expect(root.querySelector<HTMLButtonElement>(".jp-peft-stop")!.disabled).toBe(true);
    expect(root.querySelector(".jp-peft-state")!.getAttribute("data-state")).toBe("stopped");
  });

  it("draws the trainable-parameter chart from the params trait, as the studio does", () => {
    const rows = [
      { role: "self_attn.q_proj", frozen: 8192, trainable: 2048, frozen_text: "8,192", trainable_text: "2,048" },
      { role: "mlp.up_proj", frozen: 16384, trainable: 0, frozen_text: "16,384", trainable_text: "0" },
    ];
    const { root, plot } = setup({ params: { title: "trainable: 2,048", rows } });
    const [frozen, trainable] = plot.traces.get(root.querySelector<HTMLElement>(".jp-peft-params")!)!;
    expect(frozen.x).toEqual(["self_attn.q_proj", "mlp.up_proj"]);
    expect(frozen.y).toEqual([8192, 16384]);
    expect(trainable.y).toEqual([2048, null]);
  });

  it("shows the estimate beside the measured memory, as Python words it", () => {
    const line = "process memory (RSS): 600 MiB · estimate on a GPU 1.02 GiB peak tensors";
    const { model, root } = setup();
    model.set("memory", { label: "process memory (RSS)", text: "600 MiB", estimate_text: "estimate on a GPU 1.02 GiB", line });
    expect(root.querySelector(".jp-peft-memory")!.textContent).toBe(line);
  });

  it("cleans up: listeners removed, charts purged, nodes gone", () => {
    const { model, root, plot, cleanup } = setup();
    cleanup();
    expect(model.listeners()).toBe(0);
    expect(plot.calls).toContain("purge");
    expect(root.children).toHaveLength(0);
  });
});

describe("issue 14: the dashboard says what it draws", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("names traces as Python does, in the panel's unit, one trace without a legend", () => {
    const memory = panel(["memory_bytes"], {
      id: "memory", title: "process memory (RSS)", unit: "MiB", scale: 1 / 2 ** 20, from_zero: true,
      labels: { memory_bytes: "process memory (RSS)" },
    });
    const { model, root, plot } = setup({ panels: [panel(["loss", "eval_loss"]), memory] });
    model.emit("msg:custom", { kind: "reset", series: { memory_bytes: [[1, 2], [2 ** 30, 1.5 * 2 ** 30]] } });
    const div = root.querySelector<HTMLElement>('[data-panel="memory"]')!;
    expect(plot.traces.get(div)![0].y).toEqual([1024, 1536]);
    const layout = plot.layouts.get(div);
    expect(layout.yaxis).toMatchObject({ rangemode: "tozero", title: { text: "MiB" } });
    expect(layout.showlegend).toBe(false);
    expect(plot.layouts.get(root.querySelector<HTMLElement>('[data-panel="loss"]')!).showlegend).toBe(true);
    model.emit("msg:custom", { kind: "points", series: { memory_bytes: [[3], [2 ** 31]] } });
    vi.advanceTimersByTime(DRAW_EVERY_MS);
    expect(plot.traces.get(div)![0].y).toEqual([1024, 1536, 2048]);
  });

  it("Resume shows once a run has stopped short, says from where, and asks Python", () => {
    const { model, root } = setup();
    const resume = root.querySelector<HTMLButtonElement>(".jp-peft-resume")!;
    expect(resume.hidden).toBe(true);
    model.set("status", { state: "stopped", resume: { shown: true, enabled: true, title: "continue from checkpoint-40 to step 240" } });
    expect([resume.hidden, resume.disabled, resume.title]).toEqual([false, false, "continue from checkpoint-40 to step 240"]);
    resume.click();
    expect(model.sent[model.sent.length - 1]).toEqual({ kind: "resume" });
    expect(resume.disabled).toBe(true); // until Python says what the new run is
    model.set("status", { state: "stopped", resume: { shown: true, enabled: false, title: "the data was passed as an object" } });
    expect([resume.hidden, resume.disabled]).toEqual([false, true]);
  });
});

describe("a trace of one point", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("shows as a marker until its second point draws the line", () => {
    const { model, plot, lossDiv } = setup();
    model.emit("msg:custom", { kind: "reset", series: { loss: [[1], [2.0]] } });
    expect(plot.traces.get(lossDiv)).toHaveLength(1);
    const modes = () => (plot as any).modes.get(lossDiv);
    expect(modes()).toEqual(["lines+markers"]);
    model.emit("msg:custom", { kind: "points", series: { loss: [[2], [1.5]] } });
    vi.advanceTimersByTime(DRAW_EVERY_MS);
    expect(modes()).toEqual(["lines"]);
    expect(plot.traces.get(lossDiv)![0].x).toEqual([1, 2]);
  });
});
