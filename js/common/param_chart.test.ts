// @vitest-environment happy-dom
// The trainable-parameter chart both widgets draw: Python's rows in, two log-scale bar traces out.
import { describe, expect, it } from "vitest";
import { ParamChart, paramLayout, paramTraces, type ParamChartData, type PlotLike } from "./param_chart";

const DATA: ParamChartData = {
  title: "trainable: 4,096 of 110,000 parameters (3.724%)", trainable: 4096, total: 110000,
  rows: [
    { role: "self_attn.q_proj", frozen: 8192, trainable: 2048, frozen_text: "8,192", trainable_text: "2,048 (25.00% of its weights)" },
    { role: "mlp.down_proj", frozen: 16384, trainable: 0, frozen_text: "16,384", trainable_text: "0" },
    { role: "<b>x</b>", frozen: 0, trainable: 2048, frozen_text: "0", trainable_text: "2,048" },
  ],
};

class Recording implements PlotLike {
  calls: [string, HTMLElement, any[]?, any?][] = [];
  react(div: HTMLElement, data: object[], layout: object) { this.calls.push(["react", div, data, layout]); }
  purge(div: HTMLElement) { this.calls.push(["purge", div]); }
}

describe("trainable-parameter chart", () => {
  it("frozen and trainable per group, zeros left out of the log axis", () => {
    const [frozen, trainable] = paramTraces(DATA) as any[];
    expect(frozen.name).toBe("frozen");
    expect(frozen.y).toEqual([8192, 16384, null]);
    expect(trainable.y).toEqual([2048, null, 2048]);
    expect(trainable.customdata[0]).toBe("2,048 (25.00% of its weights)");
    expect((paramLayout(DATA) as any).yaxis.type).toBe("log");
  });

  it("names go to plotly escaped, so they show as text", () => {
    const [frozen] = paramTraces(DATA) as any[];
    expect(frozen.x[2]).toBe("&lt;b&gt;x&lt;/b&gt;");
  });

  it("draws into its own element and purges it", () => {
    const plot = new Recording();
    const chart = new ParamChart(plot);
    chart.purge();
    expect(plot.calls).toHaveLength(0); // nothing drawn, nothing to purge
    chart.update(DATA);
    expect(plot.calls[0][0]).toBe("react");
    expect(plot.calls[0][1]).toBe(chart.el);
    expect(plot.calls[0][3].title.text).toBe(DATA.title);
    chart.purge();
    expect(plot.calls[1]).toEqual(["purge", chart.el]);
  });
});
