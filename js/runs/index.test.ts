// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import type { PlotLib } from "../common/plotly";
import { cellText, mount, overlayTraces, sortRows, type Overlay, type Row } from "./index";
import { FakeModel } from "../common/fake_model";


class RecordingPlot implements PlotLib {
  data: any[] = [];
  layout: any = null;
  calls: string[] = [];
  newPlot(_d: HTMLElement, data: any[], layout: object) { this.calls.push("newPlot"); this.data = data; this.layout = layout; }
  react(_d: HTMLElement, data: any[], layout: object) { this.calls.push("react"); this.data = data; this.layout = layout; }
  extendTraces() { this.calls.push("extendTraces"); }
  purge() { this.calls.push("purge"); }
}

function row(name: string, extra: Partial<Row> = {}): Row {
  return { name, trainer: "sft", method: "lora", r: 8, targets: "q_proj", learning_rate: 0.001, state: "finished",
    steps: 10, max_steps: 10, train_loss: 1.5, eval_loss: null, eval_step: null, duration_s: 2.5,
    started: "2026-12-01 12:00:00", reason: "", ...extra };
}

const OVERLAY: Overlay = {
  metric: "loss", x: "step", smooth: 0, log_y: false, metrics: ["loss", "eval_loss"], names: ["a", "b"],
  traces: [{ name: "a", x: [1, 2], y: [3, 2], raw: [3, 2] }, { name: "b", x: [1, 2], y: [3, 1], raw: [3, 1] }],
  diff: [{ key: "r", values: [8, 16] }],
};

function setup() {
  const model = new FakeModel({
    runs_dir: "peft_runs", columns: [{ key: "name", label: "run" }, { key: "eval_loss", label: "best eval loss" },
      { key: "state", label: "state" }],
    rows: [row("a", { eval_loss: 2.0 }), row("b", { eval_loss: 1.0, state: "stopped" }), row("c")],
    selected: [], metric: "loss", x: "step", smooth: 0, log_y: false, overlay: {}, error: "",
  });
  const root = document.createElement("div");
  document.body.appendChild(root);
  const plot = new RecordingPlot();
  const cleanup = mount(model, root, plot);
  return { model, root, plot, cleanup };
}

describe("the runs table", () => {
  it("sorts numbers as numbers with unknown values last", () => {
    const rows = [row("a", { eval_loss: 2 }), row("c"), row("b", { eval_loss: 10 })];
    expect(sortRows(rows, "eval_loss", "asc").map((r) => r.name)).toEqual(["a", "b", "c"]);
    expect(sortRows(rows, "eval_loss", "desc").map((r) => r.name)).toEqual(["b", "a", "c"]);
    expect(cellText("eval_loss", 1.234567)).toBe("1.235");
    expect(cellText("steps", 40)).toBe("40");
  });

  it("draws a row per run, sorts on a header click and ticks runs into `selected`", () => {
    const { model, root } = setup();
    const names = () => [...root.querySelectorAll<HTMLElement>("tbody tr")].map((tr) => tr.dataset.name);
    expect(names()).toEqual(["a", "b", "c"]);
    expect(root.querySelector<HTMLElement>('td[data-state="stopped"]')?.textContent).toBe("stopped");
    root.querySelector<HTMLElement>('th[data-key="eval_loss"]')!.click();
    expect(names()).toEqual(["b", "a", "c"]);
    const compare = root.querySelector<HTMLButtonElement>(".jp-peft-runs-compare")!;
    expect(compare.disabled).toBe(true);
    const ticks = root.querySelectorAll<HTMLInputElement>(".jp-peft-runs-tick");
    ticks[0].checked = true; ticks[0].dispatchEvent(new Event("change"));
    ticks[1].checked = true; ticks[1].dispatchEvent(new Event("change"));
    expect(model.traits.selected).toEqual(["a", "b"]); // the table's order, not the click order
    expect(compare.disabled).toBe(false);
    compare.click();
    expect(model.sent).toEqual([{ kind: "compare", names: ["a", "b"] }]);
  });

  it("draws the overlay Python sent, its metric picker and the plan diff; settings go back as traits", () => {
    const { model, root, plot, cleanup } = setup();
    model.set("overlay", OVERLAY);
    expect(plot.data.map((t) => [t.name, t.x, t.y])).toEqual([["a", [1, 2], [3, 2]], ["b", [1, 2], [3, 1]]]);
    expect([...root.querySelectorAll(".jp-peft-runs-metric option")].map((o) => o.textContent)).toEqual(["loss", "eval_loss"]);
    expect(root.querySelector(".jp-peft-runs-diff")!.textContent).toContain("r816");
    const metric = root.querySelector<HTMLSelectElement>(".jp-peft-runs-metric")!;
    metric.value = "eval_loss"; metric.dispatchEvent(new Event("change"));
    expect(model.traits.metric).toBe("eval_loss");
    const logY = root.querySelector<HTMLInputElement>(".jp-peft-runs-logy")!;
    logY.checked = true; logY.dispatchEvent(new Event("change"));
    expect(model.traits.log_y).toBe(true);
    model.set("overlay", { ...OVERLAY, smooth: 0.5, log_y: true });
    expect(plot.layout.yaxis.type).toBe("log");
    expect(plot.data.length).toBe(4); // raw curves faint behind the smoothed ones
    expect(overlayTraces({ ...OVERLAY, smooth: 0.5 }).filter((t: any) => t.opacity === 0.25).length).toBe(2);
    cleanup();
    expect(model.listeners()).toBe(0);
    expect(root.children.length).toBe(0);
  });
});
