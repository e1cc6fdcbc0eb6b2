// The dashboard's styles, every rule scoped under its root .jp-peft-dashboard (so that the
// studio's rules and the dashboard's never meet), on JupyterLab's theme variables.
export const STYLE = `
.jp-peft-dashboard { font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px;
  color: var(--jp-ui-font-color1, #222); }
.jp-peft-dashboard .jp-peft-head { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.jp-peft-dashboard .jp-peft-title { font-weight: bold; }
.jp-peft-dashboard .jp-peft-state { padding: 1px 8px; border-radius: 10px; background: #999; color: white; font-size: 11px; }
.jp-peft-dashboard .jp-peft-state[data-state="running"] { background: #1f77b4; }
.jp-peft-dashboard .jp-peft-state[data-state="stopping"] { background: #ff7f0e; }
.jp-peft-dashboard .jp-peft-state[data-state="finished"] { background: #2ca02c; }
.jp-peft-dashboard .jp-peft-state[data-state="stopped"] { background: #7f7f7f; }
.jp-peft-dashboard .jp-peft-state[data-state="failed"] { background: #d62728; }
.jp-peft-dashboard .jp-peft-progress { height: 6px; background: var(--jp-layout-color3, #ddd); border-radius: 3px; margin: 6px 0 2px; }
.jp-peft-dashboard .jp-peft-progress-fill { height: 100%; width: 0; background: #1f77b4; border-radius: 3px; transition: width 0.2s; }
.jp-peft-dashboard .jp-peft-muted { color: var(--jp-ui-font-color2, #555); }
.jp-peft-dashboard .jp-peft-error, .jp-peft-dashboard .jp-peft-flags { color: #d62728; white-space: pre-wrap; }
.jp-peft-dashboard .jp-peft-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 4px; }
.jp-peft-dashboard .jp-peft-chart { min-height: 220px; }
`;
