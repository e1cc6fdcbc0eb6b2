// The sweep dashboard's styles, scoped under its root .jp-peft-sweep, on JupyterLab's theme variables.
export const STYLE = `
.jp-peft-sweep { font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; color: var(--jp-ui-font-color1, #222); }
.jp-peft-sweep .jp-peft-sweep-head { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.jp-peft-sweep .jp-peft-sweep-title { font-weight: bold; }
.jp-peft-sweep .jp-peft-sweep-state { padding: 1px 8px; border-radius: 10px; background: #999; color: white; font-size: 11px; }
.jp-peft-sweep .jp-peft-sweep-state[data-state="running"] { background: #1f77b4; }
.jp-peft-sweep .jp-peft-sweep-state[data-state="stopping"] { background: #ff7f0e; }
.jp-peft-sweep .jp-peft-sweep-state[data-state="finished"] { background: #2ca02c; }
.jp-peft-sweep .jp-peft-sweep-state[data-state="failed"] { background: #d62728; }
.jp-peft-sweep .jp-peft-sweep-progress { height: 6px; background: var(--jp-layout-color3, #ddd); border-radius: 3px; margin: 6px 0 2px; }
.jp-peft-sweep .jp-peft-sweep-progress-fill { height: 100%; width: 0; background: #1f77b4; border-radius: 3px; }
.jp-peft-sweep .jp-peft-sweep-muted { color: var(--jp-ui-font-color2, #555); }
.jp-peft-sweep .jp-peft-sweep-error { color: #d62728; white-space: pre-wrap; }
.jp-peft-sweep .jp-peft-sweep-charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 4px; }
.jp-peft-sweep .jp-peft-sweep-cell { white-space: pre; font-family: var(--jp-code-font-family, monospace); font-size: 12px;
  background: var(--jp-layout-color2, #f5f5f5); padding: 6px; margin: 4px 0; }
`;
