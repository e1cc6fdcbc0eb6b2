// The bench's styles, every rule scoped under its root .jp-peft-adapters, on JupyterLab's theme
// variables (with fallbacks for front ends without them).
export const STYLE = `
.jp-peft-adapters { font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 12px;
  color: var(--jp-ui-font-color1, #222); display: flex; flex-direction: column; gap: 8px; padding: 4px 0; }
.jp-peft-adapters button { font: inherit; cursor: pointer; border: 1px solid var(--jp-border-color1, #bbb);
  background: var(--jp-layout-color1, #fff); color: inherit; border-radius: 3px; padding: 1px 6px; }
.jp-peft-adapters button:disabled { opacity: .5; cursor: default; }
.jp-peft-adapters input, .jp-peft-adapters select, .jp-peft-adapters textarea { font: inherit; color: inherit;
  background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color1, #bbb); border-radius: 3px; padding: 1px 4px; }
.jp-peft-adapters table { border-collapse: collapse; }
.jp-peft-adapters th { text-align: left; font-weight: 600; border-bottom: 1px solid var(--jp-border-color2, #ddd); padding: 2px 6px; }
.jp-peft-adapters td { padding: 2px 6px; border-bottom: 1px solid var(--jp-border-color3, #eee); vertical-align: top; }
.jp-peft-adapters .jp-peft-num { text-align: right; }
.jp-peft-adapters .jp-peft-row-active { background: var(--jp-layout-color2, #f3f6fb); }
.jp-peft-adapters .jp-peft-row-active .jp-peft-name { color: var(--jp-brand-color1, #1976d2); }
.jp-peft-adapters .jp-peft-name { font-weight: 600; font-family: var(--jp-code-font-family, monospace); }
.jp-peft-adapters .jp-peft-muted { color: var(--jp-ui-font-color2, #666); }
.jp-peft-adapters .jp-peft-error { color: var(--jp-error-color1, #b00020); white-space: pre-wrap; }
.jp-peft-adapters .jp-peft-box { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; padding: 6px 8px;
  display: flex; flex-direction: column; gap: 4px; }
.jp-peft-adapters .jp-peft-bar { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.jp-peft-adapters .jp-peft-out td { white-space: pre-wrap; max-width: 28em; }
.jp-peft-adapters .jp-peft-differs { background: var(--jp-warn-color3, #fff3cd); }
.jp-peft-adapters .jp-peft-weight { width: 48px; }
.jp-peft-adapters textarea { width: 100%; min-height: 3em; box-sizing: border-box; }
`;
