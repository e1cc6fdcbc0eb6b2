// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import type { PlotLib } from "../common/plotly";
import { INSERT_EVENT } from "../studio/cell";
import { curveTraces, lineColor, mount, parcoordsFigure, type Parcoords, type Trial } from "./index";
import { FakeModel } from "../common/fake_model";


class RecordingPlot implements PlotLib {
  figures = new Map<HTMLElement, { data: any[]; layout: any }>();
  newPlot(d: HTMLElement, data: any[], layout: object) { this.figures.set(d, { data, layout }); }
  react(d: HTMLElement, data: any[], layout: object) { this.figures.set(d, { data, layout }); }
  extendTraces() {}
  purge(d: HTMLElement) { this.figures.delete(d); }
}

function trial(number: number, state: Trial["state"], ys: number[], value: number | null = null): Trial {
  return { number, state, value, params: { r: 4 * (number + 1) }, curve: { x: ys.map((_, i) => 2 * (i + 1)), y: ys }, run: `s-trial-${number}`, why: "" };
}

const PAR: Parcoords = {
  metric: "eval_loss",
  axes: [{ label: "r", ticks: [{ y: 0, text: "4" }, { y: 1, text: "8" }] }, { label: "eval_loss", ticks: [{ y: 0, text: "2" }, { y: 1, text: "3" }] }],
  lines: [{ number: 0, y: [0, 0], value: 2, t: 0 }, { number: 2, y: [1, 1], value: 3, t: 1 }],
};

function setup(cell = "") {
  const model = new FakeModel({
    status: { state: "running", title: "sweep s", message: "", error: "", metric: "eval_loss", direction: "minimize" },
    progress: { done: 2, total: 4, percent: 50, elapsed_text: "3s", eta_text: "3s", text: "trial 3 of 4 · 2 done" },
    trials: [trial(0, "complete", [3, 2], 2), trial(1, "pruned", [3.5]), trial(2, "complete", [3.2, 3], 3), trial(3, "running", [])],
    best: { number: 0, value: 2, params: { r: 4 }, run: "s-trial-0" }, parcoords: PAR, cell,
  });
  const root = document.createElement("div");
  document.body.appendChild(root);
  const plot = new RecordingPlot();
  return { model, root, plot, cleanup: mount(model, root, plot) };
}

describe("the sweep dashboard", () => {
  it("overlays every trial's curve, the pruned greyed and the best thick", () => {
    const traces = curveTraces(setup().model.traits.trials, 0) as any[];
    expect(traces.map((t) => t.name)).toEqual(["trial 0 (best)", "trial 1 (pruned)", "trial 2"]);
    expect(traces[0].line.width).toBeGreaterThan(traces[2].line.width);
    expect(traces[1].line.color).toBe("#b0b0b0");
    expect(traces[1].line.dash).toBe("dot");
    expect(traces[1].mode).toBe("lines+markers"); // one point
  });

  it("draws parallel coordinates as lines across the axes, the best on top in green", () => {
    const fig = parcoordsFigure(PAR);
    expect((fig.data as any[]).map((d) => d.name)).toEqual(["trial 2", "trial 0"]);
    expect((fig.data as any[])[1].y).toEqual([0, 0]);
    expect(lineColor(0)).toBe("rgb(44,160,44)");
    expect(fig.shapes.length).toBe(2);
    expect((fig.annotations as any[]).map((a) => a.text)).toContain("<b>eval_loss</b>");
  });

  it("shows state, progress and the best; Stop and Write cell", () => {
    const { model, root, plot, cleanup } = setup("%%peft model\nmethod: lora\n");
    expect(root.querySelector(".jp-peft-sweep-progress-text")!.textContent).toBe("trial 3 of 4 · 2 done");
    expect(root.querySelector(".jp-peft-sweep-best")!.textContent).toContain("trial 0 · eval_loss 2.000 · r=4");
    expect(plot.figures.size).toBe(2);
    root.querySelector<HTMLButtonElement>(".jp-peft-sweep-stop")!.click();
    expect(model.sent).toEqual([{ kind: "stop" }]);
    let inserted = "";
    root.addEventListener(INSERT_EVENT, (e: any) => { inserted = e.detail.code; e.detail.handled = true; });
    root.querySelector<HTMLButtonElement>(".jp-peft-sweep-write")!.click();
    expect(inserted).toBe("%%peft model\nmethod: lora\n");
    model.set("status", { ...model.traits.status, state: "finished" });
    expect(root.querySelector<HTMLButtonElement>(".jp-peft-sweep-stop")!.disabled).toBe(true);
    cleanup();
    expect(model.listeners()).toBe(0);
    expect(plot.figures.size).toBe(0);
  });

  it("offers the cell to copy without the extension", () => {
    const { root } = setup("%%peft model\nr: 8\n");
    root.querySelector<HTMLButtonElement>(".jp-peft-sweep-write")!.click();
    expect(root.querySelector(".jp-peft-sweep-cell")!.textContent).toBe("%%peft model\nr: 8\n");
  });
});
