// @vitest-environment happy-dom
// The charts take JupyterLab's theme: its CSS variables as a plotly template, the chart's own
// layout over it, and a redraw when the theme changes.

import { describe, expect, it } from "vitest";
import { onThemeChange, themeColors, themed } from "./theme";

describe("charts in JupyterLab's theme", () => {
  it("reads the theme's variables as the widget's element resolves them, light defaults where unset", () => {
    const host = document.createElement("div");
    const el = host.appendChild(document.createElement("div"));
    // JupyterLab's theme sets them on :root; what the element resolves is what counts
    el.style.setProperty("--jp-ui-font-color1", "rgba(255, 255, 255, 1)");
    el.style.setProperty("--jp-border-color2", "#424242");
    document.body.append(host);
    const colors = themeColors(el);
    expect(colors.text).toBe("rgba(255, 255, 255, 1)");
    expect(colors.grid).toBe("#424242");
    expect(colors.muted).toBe("#616161"); // not set: the light theme's
    host.remove();
  });

  it("the chart's layout wins, the theme fills in the colours", () => {
    const colors = { text: "white", muted: "#aaa", grid: "#333", line: "#555", paper: "#111", font: "sans-serif" };
    const layout = themed({ yaxis: { type: "log", title: { text: "MiB" } }, font: { size: 10 } }, colors) as any;
    expect(layout.yaxis).toMatchObject({ type: "log", gridcolor: "#333", tickfont: { color: "#aaa" } });
    expect(layout.yaxis.title).toEqual({ text: "MiB", font: { color: "#aaa" } });
    expect(layout.font).toEqual({ family: "sans-serif", color: "white", size: 10 });
    expect(layout.xaxis.gridcolor).toBe("#333");
    expect(layout.paper_bgcolor).toBe("rgba(0,0,0,0)");
  });

  it("redraws when JupyterLab switches theme, and stops watching", async () => {
    let redraws = 0;
    const stop = onThemeChange(document, () => redraws++);
    document.body.dataset.jpThemeName = "JupyterLab Dark";
    await new Promise((r) => setTimeout(r, 50));
    expect(redraws).toBe(1);
    stop();
    document.body.dataset.jpThemeName = "JupyterLab Light";
    await new Promise((r) => setTimeout(r, 50));
    expect(redraws).toBe(1);
  });
});
