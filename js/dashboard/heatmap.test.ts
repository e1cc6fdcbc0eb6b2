// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import type { PlotLib } from "../common/plotly";
import { Heatmap, layout, thin, trace } from "./heatmap";
import type { ModuleSample, ModulesMeta } from "./types";

class RecordingPlot implements PlotLib {
  calls: string[] = [];
  last: any = null;
  newPlot(_div: HTMLElement, data: any[]) { this.calls.push("newPlot"); this.last = data[0]; }
  react(_div: HTMLElement, data: any[]) { this.calls.push("react"); this.last = data[0]; }
  extendTraces() { this.calls.push("extendTraces"); }
  purge() { this.calls.push("purge"); }
}

const META: ModulesMeta = {
  paths: ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj",
    "model.layers.1.mlp.down_proj", "lm_head"],
  groups: ["self_attn.q_proj", "mlp.down_proj", "self_attn.q_proj", "mlp.down_proj", "lm_head"],
  layers: [0, 0, 1, 1, null],
  ranks: [8, 8, 8, 8, null],
  signals: { grad: "gradient norm", update: "update since last sample", moved: "update since start", relative: "relative update" },
  every: 10,
};

function sample(step: number, scale = 1): ModuleSample {
  const row = [1, 10, 100, 1000, null].map((v) => (v === null ? null : v * scale));
  return [step, [row, row, row, row]];
}

describe("heatmap", () => {
  it("puts each module in its layer's row and its role's column, other layers last", () => {
    const { roles, layers, cell } = layout(META);
    expect(roles).toEqual(["self_attn.q_proj", "mlp.down_proj", "lm_head"]);
    expect(layers).toEqual(["0", "1", "other"]);
    expect(cell).toEqual([[0, 0], [0, 1], [1, 0], [1, 1], [2, 2]]);
  });

  it("colours log10 of the values and names path and value on hover; gaps stay empty", () => {
    const t = trace(META, sample(10), "grad") as any;
    expect(t.type).toBe("heatmap");
    expect(t.z).toEqual([[0, 1, null], [2, 3, null], [null, null, null]]);
    expect(t.text[1][0]).toBe("model.layers.1.self_attn.q_proj, r=8<br>gradient norm: 100.0");
    expect(t.text[2][2]).toBe("lm_head<br>gradient norm: not finite");
  });

  it("draws on the reset, adds only new samples, follows the latest until the slider moves back", () => {
    const plot = new RecordingPlot();
    const box = document.createElement("div");
    const map = new Heatmap(box, plot);
    expect(map.el.hidden).toBe(true);
    expect(map.onMsg({ kind: "points", series: {} })).toBe(false); // not ours
    map.onMsg({ kind: "modules-reset", meta: META, samples: [sample(10)], nan: null });
    expect(map.el.hidden).toBe(false);
    expect(plot.calls).toEqual(["newPlot"]);
    const select = box.querySelector("select")!;
    expect([...select.options].map((o) => o.value)).toEqual(["grad", "update", "moved", "relative"]);
    expect(select.value).toBe("relative");
    map.onMsg({ kind: "modules", samples: [sample(20, 2)] });
    expect(map.shown![0]).toBe(20);
    const slider = box.querySelector("input")!;
    expect(slider.max).toBe("1");
    slider.value = "0";
    slider.dispatchEvent(new Event("input"));
    expect(map.shown![0]).toBe(10);
    map.onMsg({ kind: "modules", samples: [sample(30)] });
    expect(map.shown![0]).toBe(10); // the user looks at an earlier step: it stays
    expect(box.querySelector(".jp-peft-modules-step-text")!.textContent).toBe("step 10 (sample 1 of 3)");
    select.value = "grad";
    select.dispatchEvent(new Event("change"));
    expect(plot.last.z[0][1]).toBe(1);
    map.onMsg({ kind: "modules", samples: [], nan: { step: 31, path: "model.layers.1.mlp.down_proj", input_norm: 3e4,
      modules: [], backward_order: [], first_bad_input: null, text: "first non-finite gradient at step 31: model.layers.1.mlp.down_proj" } });
    expect(box.querySelector(".jp-peft-modules-nan")!.textContent).toContain("model.layers.1.mlp.down_proj");
    expect(box.querySelector(".jp-peft-modules-caption")!.textContent).toContain("not proof of a useless module");
    const suggest = box.querySelector<HTMLElement>(".jp-peft-modules-suggest")!;
    expect(suggest.hidden).toBe(true);
    map.onMsg({ kind: "modules-suggest", cell: "%%peft model\nranks: {mlp.down_proj: 12}\n", reasoning: "budget 100" });
    expect(suggest.hidden).toBe(false);
    expect(suggest.textContent).toContain("ranks: {mlp.down_proj: 12}");
    const asked: string[] = [];
    box.addEventListener("jupyter-peft:insert-cell", (e) => {
      const detail = (e as CustomEvent).detail;
      asked.push(detail.code);
      detail.handled = true;
    });
    document.body.appendChild(box);
    suggest.querySelector("button")!.click();
    expect(asked).toEqual(["%%peft model\nranks: {mlp.down_proj: 12}\n"]);
    map.dispose();
    expect(plot.calls[plot.calls.length - 1]).toBe("purge");
    expect(box.children.length).toBe(0);
  });

  it("keeps at most MAX_SAMPLES, thinning the older half, the newest intact", () => {
    const many = Array.from({ length: 10 }, (_, i) => sample(i));
    const kept = thin(many, 8);
    expect(kept.map((s) => s[0])).toEqual([0, 2, 4, 5, 6, 7, 8, 9]);
  });
});
