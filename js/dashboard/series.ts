// One metric's points as the browser keeps them: bounded, with older points thinned.
// Python computes every value; this only decides which of them stay on screen, so a
// 100,000-step run costs the browser no more than `max` points per trace.

export interface Series {
  x: number[];
  y: (number | null)[];
}

export type SeriesMap = Record<string, [number[], (number | null)[]]>;

export function fromPair([x, y]: [number[], (number | null)[]]): Series {
  return { x: x.slice(), y: y.slice() };
}

/** Append points; returns true when the series was thinned (the chart must be redrawn whole). */
export function append(s: Series, xs: number[], ys: (number | null)[], max: number): boolean {
  for (let i = 0; i < xs.length; i++) {
    s.x.push(xs[i]);
    s.y.push(ys[i]);
  }
  if (s.x.length <= max) return false;
  while (s.x.length > max) thin(s);
  return true;
}

/** Keep every other point of the older half, all of the newer half: recent steps stay
 * exact, history gets coarser the older it is. Leaves about 3/4 of the points. */
export function thin(s: Series): void {
  const half = Math.floor(s.x.length / 2);
  const x: number[] = [];
  const y: (number | null)[] = [];
  for (let i = 0; i < s.x.length; i++) {
    if (i >= half || i % 2 === 0) {
      x.push(s.x[i]);
      y.push(s.y[i]);
    }
  }
  s.x = x;
  s.y = y;
}

/** Add `more`'s points after `into`'s, key by key (points queued between two draws). */
export function merge(into: SeriesMap, more: SeriesMap): SeriesMap {
  for (const [key, [xs, ys]] of Object.entries(more)) {
    const have = into[key];
    into[key] = have ? [have[0].concat(xs), have[1].concat(ys)] : [xs.slice(), ys.slice()];
  }
  return into;
}
