// @vitest-environment happy-dom
// plotly for both widgets, once per page: the first view asks its kernel, every later view (of
// either widget) waits on the same answer; a failed ask lets the next view ask again; charts
// drawn before plotly arrives run in order once it has.

import { describe, expect, it, vi } from "vitest";
import { lazyPlot, loadPlotly, PLOTLY_KEY, type AssetModel, type PlotLib } from "./plotly";

class Kernel implements AssetModel {
  asked = 0;
  private handlers = new Set<(msg: any, buffers?: any[]) => void>();
  send(): void { this.asked++; }
  on(_e: "msg:custom", cb: (msg: any, buffers?: any[]) => void): void { this.handlers.add(cb); }
  off(_e: "msg:custom", cb: (msg: any, buffers?: any[]) => void): void { this.handlers.delete(cb); }
  answer(msg: object, buffers?: any[]): void { for (const cb of [...this.handlers]) cb(msg, buffers); }
  listening(): number { return this.handlers.size; }
}

describe("one plotly per page", () => {
  it("the first view asks; the others share its answer", async () => {
    const store: Record<string, Promise<PlotLib> | undefined> = {};
    const one = new Kernel();
    const two = new Kernel();
    const first = loadPlotly(one, store);
    const second = loadPlotly(two, store);
    expect([one.asked, two.asked]).toEqual([1, 0]);
    expect(store[PLOTLY_KEY]).toBeDefined();
    one.answer({ kind: "points" }); // other messages pass by
    expect(one.listening()).toBe(1);
    one.answer({ kind: "plotly" }); // no code: the ask failed
    await expect(first).rejects.toThrow("without its code");
    expect(one.listening()).toBe(0);
    // the second view asks its own kernel now
    await Promise.resolve();
    await Promise.resolve();
    expect(two.asked).toBe(1);
    expect(store[PLOTLY_KEY]).toBeDefined();
    void second.catch(() => undefined);
  });

  it("a view waits no longer than the timeout for its kernel", async () => {
    vi.useFakeTimers();
    try {
      const store: Record<string, Promise<PlotLib> | undefined> = {};
      const kernel = new Kernel();
      const asked = loadPlotly(kernel, store);
      vi.advanceTimersByTime(120_000);
      await expect(asked).rejects.toThrow("did not arrive");
      expect(store[PLOTLY_KEY]).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("charts before plotly", () => {
  it("queue in order, then call plotly directly", async () => {
    const calls: string[] = [];
    const lib = {
      newPlot: (d: HTMLElement) => calls.push(`newPlot ${d.id}`),
      react: (d: HTMLElement) => calls.push(`react ${d.id}`),
      extendTraces: (d: HTMLElement) => calls.push(`extend ${d.id}`),
      purge: (d: HTMLElement) => { calls.push(`purge ${d.id}`); },
    } as unknown as PlotLib;
    let arrive!: (p: PlotLib) => void;
    const plot = lazyPlot(new Promise<PlotLib>((r) => (arrive = r)));
    const a = Object.assign(document.createElement("div"), { id: "a" });
    plot.newPlot(a, [], {});
    plot.extendTraces(a, { x: [[1]], y: [[1]] }, [0]);
    plot.react(a, [], {});
    expect(calls).toEqual([]);
    arrive(lib);
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toEqual(["newPlot a", "extend a", "react a"]);
    plot.purge(a); // now at once
    expect(calls[calls.length - 1]).toBe("purge a");
  });
});
