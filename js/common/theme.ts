// The charts' colours from JupyterLab's theme: a plotly layout template made of the theme's CSS
// variables (as they resolve on the widget's element), so axis labels, grid lines and legends
// read well in the light and the dark theme alike, and a watcher that redraws when the user
// switches theme (JupyterLab marks <body> with data-jp-theme-name / data-jp-theme-light).

/** The theme variables the charts use, with the light theme's values where a front end has none. */
const VARS = {
  text: ["--jp-ui-font-color1", "#222"],
  muted: ["--jp-ui-font-color2", "#616161"],
  grid: ["--jp-border-color2", "#e0e0e0"],
  line: ["--jp-border-color1", "#bdbdbd"],
  paper: ["--jp-layout-color0", "#ffffff"],
  font: ["--jp-ui-font-family", "system-ui, -apple-system, sans-serif"],
} as const;

export type ThemeColors = { readonly [K in keyof typeof VARS]: string };

/** The theme's colours as they apply to `el` (CSS variables inherit down to it). */
export function themeColors(el: Element): ThemeColors {
  const style = el.ownerDocument.defaultView?.getComputedStyle(el);
  const out: Record<string, string> = {};
  for (const [key, [name, fallback]] of Object.entries(VARS)) {
    out[key] = style?.getPropertyValue(name).trim() || fallback;
  }
  return out as ThemeColors;
}

/** The layout parts a chart takes from the theme (merged over its own layout by `themed`). */
export function themeLayout(colors: ThemeColors): Record<string, unknown> {
  const axis = {
    color: colors.muted,
    gridcolor: colors.grid,
    linecolor: colors.line,
    zerolinecolor: colors.line,
    tickfont: { color: colors.muted },
    title: { font: { color: colors.muted } },
  };
  return {
    font: { family: colors.font, color: colors.text },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    xaxis: axis,
    yaxis: axis,
    legend: { font: { color: colors.text }, bgcolor: "rgba(0,0,0,0)" },
    title: { font: { color: colors.text } },
    hoverlabel: { font: { family: colors.font } },
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `layout` over the theme: the chart's own settings win, the theme fills in the colours. */
export function themed(layout: Record<string, unknown>, colors: ThemeColors): Record<string, unknown> {
  return deepMerge(themeLayout(colors), layout);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    out[key] = isObject(value) && isObject(base[key]) ? deepMerge(base[key] as Record<string, unknown>, value) : value;
  }
  return out;
}

/** Call `redraw` when JupyterLab switches theme; returns the function that stops watching. */
export function onThemeChange(doc: Document, redraw: () => void): () => void {
  const View = doc.defaultView as (Window & typeof globalThis) | null;
  if (!View || typeof View.MutationObserver !== "function" || !doc.body) return () => undefined;
  let frame: number | null = null;
  const observer = new View.MutationObserver(() => {
    // the new theme's stylesheet may apply a moment after the attributes change: read it next frame
    if (frame !== null) View.cancelAnimationFrame(frame);
    frame = View.requestAnimationFrame(() => {
      frame = null;
      redraw();
    });
  });
  observer.observe(doc.body, { attributes: true, attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"] });
  return () => {
    observer.disconnect();
    if (frame !== null) View.cancelAnimationFrame(frame);
  };
}
