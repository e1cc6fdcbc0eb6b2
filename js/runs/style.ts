// The runs table's styles, scoped under its root .jp-peft-runs, on JupyterLab's theme variables.
export const STYLE = `
.jp-peft-runs { font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px; color: var(--jp-ui-font-color1, #222); }
.jp-peft-runs .jp-peft-runs-head { display: flex; gap: 8px; align-items: center; margin-bottom: 4px; flex-wrap: wrap; }
.jp-peft-runs .jp-peft-runs-title { font-weight: bold; }
.jp-peft-runs .jp-peft-runs-scroll { max-height: 320px; overflow: auto; border: 1px solid var(--jp-border-color2, #e0e0e0); }
.jp-peft-runs table { border-collapse: collapse; width: 100%; }
.jp-peft-runs th, .jp-peft-runs td { padding: 2px 6px; border-bottom: 1px solid var(--jp-border-color2, #e0e0e0); text-align: left; white-space: nowrap; }
.jp-peft-runs th { position: sticky; top: 0; background: var(--jp-layout-color1, #fff); cursor: pointer; user-select: none; }
.jp-peft-runs th[data-sort="asc"]::after { content: " \\25B2"; }
.jp-peft-runs th[data-sort="desc"]::after { content: " \\25BC"; }
.jp-peft-runs td.jp-peft-num { text-align: right; font-variant-numeric: tabular-nums; }
.jp-peft-runs td.jp-peft-note { color: var(--jp-ui-font-color2, #555); white-space: normal; max-width: 360px; }
.jp-peft-runs td[data-state="finished"] { color: #2ca02c; }
.jp-peft-runs td[data-state="stopped"] { color: #7f7f7f; }
.jp-peft-runs td[data-state="failed"], .jp-peft-runs td[data-state="unreadable"] { color: #d62728; }
.jp-peft-runs td[data-state="incomplete"] { color: #ff7f0e; }
.jp-peft-runs td[data-state="running"] { color: #1f77b4; }
.jp-peft-runs .jp-peft-runs-controls { display: flex; gap: 10px; align-items: center; margin: 6px 0; flex-wrap: wrap; }
.jp-peft-runs .jp-peft-runs-error { color: #d62728; }
.jp-peft-runs .jp-peft-runs-chart { min-height: 0; }
.jp-peft-runs .jp-peft-runs-diff td, .jp-peft-runs .jp-peft-runs-diff th { cursor: default; }
`;
