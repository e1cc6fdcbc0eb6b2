// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { samplesPart } from "./samples";

describe("samples part", () => {
  it("shows the newest sample on top, resets, and takes only its own messages", () => {
    const box = document.createElement("div");
    const part = samplesPart({} as any, box);
    expect(part.onMsg({ kind: "points", series: {} })).toBe(false);
    expect(box.querySelector<HTMLElement>(".jp-peft-samples")!.hidden).toBe(true);
    part.onMsg({ kind: "samples", reset: true, rows: [{ step: 10, prompt: "p", output: "first", seconds: 0.5 }] });
    part.onMsg({ kind: "samples", reset: false, rows: [{ step: 20, prompt: "p", output: "second", seconds: 0.25 }] });
    const steps = [...box.querySelectorAll<HTMLTableRowElement>("tr")].map((r) => r.dataset.step);
    expect(steps).toEqual(["20", "10"]);
    expect(box.querySelector("tr")!.textContent).toContain("0.25 s");
    part.onMsg({ kind: "samples", reset: true, rows: [{ step: 5, prompt: "p", output: "x", seconds: 1 }] });
    expect(box.querySelectorAll("tr").length).toBe(1);
    part.dispose();
    expect(box.children.length).toBe(0);
  });
});
