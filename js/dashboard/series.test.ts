import { describe, expect, it } from "vitest";
import { append, thin, type Series } from "./series";

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

describe("series", () => {
  it("appends without thinning under the bound", () => {
    const s: Series = { x: [], y: [] };
    expect(append(s, [1, 2, 3], [0.5, null, 0.25], 10)).toBe(false);
    expect(s).toEqual({ x: [1, 2, 3], y: [0.5, null, 0.25] });
  });

  it("thins the older half to every other point and keeps the newer half exact", () => {
    const s: Series = { x: range(8), y: range(8) };
    thin(s);
    expect(s.x).toEqual([0, 2, 4, 5, 6, 7]);
    expect(s.y).toEqual(s.x);
  });

  it("stays bounded over 100,000 steps, keeps the first, the last and the recent points", () => {
    const s: Series = { x: [], y: [] };
    let redraws = 0;
    for (let start = 1; start <= 100_000; start += 3) {
      const xs = range(3, start);
      if (append(s, xs, xs.map((v) => v / 2), 2000)) redraws++;
    }
    expect(s.x.length).toBeLessThanOrEqual(2000);
    expect(s.x[0]).toBe(1);
    expect(s.x[s.x.length - 1]).toBe(100_002);
    expect(s.x.slice(-500)).toEqual(range(500, 100_002 - 499)); // the newest points untouched
    expect(redraws).toBeLessThan(200); // thinning is rare: a redraw every ~500 points
    expect(s.x.every((v, i) => i === 0 || v > s.x[i - 1])).toBe(true);
  });
});
