// plotly for both widgets, loaded once per page. The widgets' bundles do not carry it: the first
// view asks its widget's Python side ({kind: "plotly"}), which answers with static/plotly.js as
// one binary buffer (jupyter_peft/ui/plotly_asset.py); the module is imported from a blob URL
// and kept on globalThis under the build's plotly hash, so every later view of either widget
// (and of another widget class) uses the same copy. Until it arrives, charts queue their calls.

declare const __PLOTLY_ID__: string;

/** The part of plotly's API the widgets use. */
export interface PlotLib {
  newPlot(div: HTMLElement, data: object[], layout: object, config?: object): unknown;
  react(div: HTMLElement, data: object[], layout: object, config?: object): unknown;
  extendTraces(div: HTMLElement, update: { x: number[][]; y: (number | null)[][] }, indices: number[]): unknown;
  purge(div: HTMLElement): void;
}

/** What the loader needs of an anywidget model. */
export interface AssetModel {
  send(content: { kind: "plotly" }): void;
  on(event: "msg:custom", cb: (msg: any, buffers?: (ArrayBuffer | ArrayBufferView)[]) => void): void;
  off(event: "msg:custom", cb: (msg: any, buffers?: (ArrayBuffer | ArrayBufferView)[]) => void): void;
}

export const PLOTLY_KEY = `__jupyterPeftPlotly_${typeof __PLOTLY_ID__ === "string" ? __PLOTLY_ID__ : "dev"}`;
/** How long a view waits for its kernel's answer before another view may ask again. */
export const PLOTLY_TIMEOUT_MS = 120_000;

type Store = Record<string, Promise<PlotLib> | undefined>;

/** plotly, from the page's copy or asked of `model`'s kernel (once per page). */
export function loadPlotly(model: AssetModel, store: Store = globalThis as unknown as Store): Promise<PlotLib> {
  const known = store[PLOTLY_KEY];
  if (known) return known.catch(() => loadPlotly(model, store)); // the first asker failed: ask ours
  const asked = ask(model).catch((err) => {
    if (store[PLOTLY_KEY] === asked) delete store[PLOTLY_KEY];
    throw err;
  });
  store[PLOTLY_KEY] = asked;
  return asked;
}

function ask(model: AssetModel): Promise<PlotLib> {
  return new Promise<PlotLib>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error("plotly did not arrive from the kernel")), PLOTLY_TIMEOUT_MS);
    const done = (err: Error | null, lib?: PlotLib) => {
      clearTimeout(timer);
      model.off("msg:custom", onMsg);
      if (err) reject(err);
      else resolve(lib!);
    };
    const onMsg = (msg: any, buffers?: (ArrayBuffer | ArrayBufferView)[]) => {
      if (msg?.kind !== "plotly") return;
      const buffer = buffers?.[0];
      if (!buffer) return done(new Error("plotly came without its code"));
      importBuffer(buffer).then((lib) => done(null, lib), (err) => done(err instanceof Error ? err : new Error(String(err))));
    };
    model.on("msg:custom", onMsg);
    model.send({ kind: "plotly" });
  });
}

async function importBuffer(buffer: ArrayBuffer | ArrayBufferView): Promise<PlotLib> {
  const bytes = ArrayBuffer.isView(buffer) ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : new Uint8Array(buffer);
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: "text/javascript" }));
  try {
    const mod = await import(/* @vite-ignore */ url);
    return mod.default as PlotLib;
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** A PlotLib that waits for `ready`: calls made before plotly arrives run in order once it has,
 * later ones at once (an extendTraces must reach the chart its newPlot just drew). */
export function lazyPlot(ready: Promise<PlotLib>): PlotLib {
  let lib: PlotLib | null = null;
  let queued = 0;
  let tail: Promise<unknown> = ready.then(
    (p) => { lib = p; },
    (err) => console.error("[jupyter_peft] no charts: plotly did not load", err),
  );
  const call = (name: keyof PlotLib) => (...args: unknown[]): unknown => {
    const run = () => (lib ? (lib[name] as (...a: unknown[]) => unknown)(...args) : undefined);
    if (lib && queued === 0) return run();
    queued++;
    tail = tail
      .then(() => { queued--; return run(); })
      .catch((err) => console.error(`[jupyter_peft] plotly ${name} failed`, err));
    return undefined;
  };
  return {
    newPlot: call("newPlot"),
    react: call("react"),
    extendTraces: call("extendTraces"),
    purge: call("purge") as (div: HTMLElement) => void,
  };
}
