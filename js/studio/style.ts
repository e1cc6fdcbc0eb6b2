// The studio's styles, every rule scoped under its root .jp-peft-studio (js/common/style.test.ts
// checks it: the dashboard shares class names such as .jp-peft-memory), built on JupyterLab's
// theme variables (with fallbacks for front ends without them).
export const STYLE = `
.jp-peft-studio { font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 12px;
  color: var(--jp-ui-font-color1, #222); display: flex; flex-direction: column; gap: 8px; padding: 4px 0;
  container-type: inline-size; }
.jp-peft-studio button { font: inherit; cursor: pointer; border: 1px solid var(--jp-border-color1, #bbb);
  background: var(--jp-layout-color1, #fff); color: inherit; border-radius: 3px; padding: 2px 8px; }
.jp-peft-studio button:disabled { opacity: .5; cursor: default; }
.jp-peft-studio .jp-peft-primary { background: var(--jp-brand-color1, #1976d2); color: #fff; border-color: transparent; }
.jp-peft-studio input, .jp-peft-studio select { font: inherit; color: inherit; background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color1, #bbb); border-radius: 3px; padding: 1px 4px; }
.jp-peft-studio .jp-peft-header { font-size: 13px; }
.jp-peft-studio .jp-peft-model { font-weight: 600; }
.jp-peft-studio .jp-peft-muted, .jp-peft-studio .jp-peft-hint, .jp-peft-studio .jp-peft-help { color: var(--jp-ui-font-color2, #666); }
.jp-peft-studio .jp-peft-bar { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; }
.jp-peft-studio .jp-peft-presets { display: flex; gap: 4px; }
.jp-peft-studio .jp-peft-filter { min-width: 220px; }
.jp-peft-studio .jp-peft-main { display: flex; gap: 12px; align-items: flex-start; flex-wrap: wrap; }
.jp-peft-studio .jp-peft-left { flex: 1 1 600px; min-width: 0; max-height: 420px; overflow: auto; }
.jp-peft-studio .jp-peft-kind { color: var(--jp-ui-font-color2, #666); }
.jp-peft-studio .jp-peft-right { flex: 0 0 220px; display: flex; flex-direction: column; gap: 8px; }
.jp-peft-studio .jp-peft-tree { border-collapse: collapse; width: 100%; }
.jp-peft-studio .jp-peft-tree th { text-align: left; font-weight: 600; position: sticky; top: 0; background: var(--jp-layout-color1, #fff);
  border-bottom: 1px solid var(--jp-border-color2, #ddd); padding: 2px 6px; }
.jp-peft-studio .jp-peft-tree td { padding: 2px 6px; border-bottom: 1px solid var(--jp-border-color3, #eee); white-space: nowrap; }
.jp-peft-studio .jp-peft-num { text-align: right; }
.jp-peft-studio .jp-peft-role span { font-family: var(--jp-code-font-family, monospace); }
.jp-peft-studio .jp-peft-toggle { border: none !important; background: none !important; padding: 0 4px !important; width: 18px; }
.jp-peft-studio .jp-peft-group.jp-peft-on { background: var(--jp-layout-color2, #f3f6fb); }
.jp-peft-studio .jp-peft-group.jp-peft-off { opacity: .45; }
.jp-peft-studio .jp-peft-group[data-section="vision"] .jp-peft-role span, .jp-peft-studio .jp-peft-group[data-section="audio"] .jp-peft-role span,
.jp-peft-studio .jp-peft-group[data-section="projector"] .jp-peft-role span { color: var(--jp-warn-color1, #b26a00); }
.jp-peft-studio .jp-peft-small { width: 40px; text-align: right; }
.jp-peft-studio .jp-peft-trainable { color: var(--jp-brand-color1, #1976d2); }
.jp-peft-studio .jp-peft-grid { display: flex; flex-wrap: wrap; gap: 2px 6px; padding: 2px 0 6px 28px; }
.jp-peft-studio .jp-peft-layer { display: inline-flex; align-items: center; gap: 1px; font-size: 11px; min-width: 38px; }
.jp-peft-studio .jp-peft-hint { padding-left: 28px; font-size: 11px; }
.jp-peft-studio .jp-peft-numbers, .jp-peft-studio .jp-peft-memory { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; padding: 6px 8px; }
.jp-peft-studio .jp-peft-label { text-transform: uppercase; font-size: 10px; letter-spacing: .04em; color: var(--jp-ui-font-color2, #666); }
.jp-peft-studio .jp-peft-big { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.jp-peft-studio .jp-peft-big-2 { font-size: 16px; font-weight: 600; }
.jp-peft-studio .jp-peft-param-chart { flex: 1 1 480px; min-width: 0; min-height: 260px; }
.jp-peft-studio .jp-peft-memory { flex: 0 0 300px; }
.jp-peft-studio .jp-peft-pending .jp-peft-mem-total, .jp-peft-studio .jp-peft-pending .jp-peft-mem-bar, .jp-peft-studio .jp-peft-pending .jp-peft-mem-legend { opacity: .5; }
.jp-peft-studio .jp-peft-mem-bar { position: relative; display: flex; height: 14px; margin: 4px 0; background: var(--jp-layout-color2, #eee);
  border-radius: 2px; }
.jp-peft-studio .jp-peft-mem-part { display: block; height: 100%; }
.jp-peft-studio .jp-peft-mem-line { position: absolute; top: -3px; bottom: -3px; width: 0; border-left: 2px dashed var(--jp-ui-font-color1, #222); }
.jp-peft-studio .jp-peft-mem-legend { display: grid; grid-template-columns: 1fr; font-size: 11px; }
.jp-peft-studio .jp-peft-mem-row { display: flex; gap: 4px; align-items: center; }
.jp-peft-studio .jp-peft-mem-row .jp-peft-num { margin-left: auto; }
.jp-peft-studio .jp-peft-swatch { display: inline-block; width: 9px; height: 9px; border-radius: 1px; }
.jp-peft-studio .jp-peft-mem-inputs { display: flex; flex-wrap: wrap; gap: 4px 10px; margin: 6px 0 2px; }
.jp-peft-studio .jp-peft-mem-inputs .jp-peft-small { width: 54px; }
.jp-peft-studio .jp-peft-mem-gpu { max-width: 190px; }
.jp-peft-studio .jp-peft-mem-setup, .jp-peft-studio .jp-peft-mem-compare, .jp-peft-studio .jp-peft-mem-advice { font-size: 11px; }
.jp-peft-studio .jp-peft-mem-advice { margin: 2px 0; padding-left: 16px; }
.jp-peft-studio .jp-peft-warning { color: var(--jp-warn-color1, #b26a00); }
.jp-peft-studio .jp-peft-error { color: var(--jp-error-color1, #c62828); }
.jp-peft-studio .jp-peft-bad { border-color: var(--jp-error-color1, #c62828) !important; }
.jp-peft-studio .jp-peft-ok { color: var(--jp-success-color1, #2e7d32); }
.jp-peft-studio .jp-peft-title { font-weight: 600; margin-bottom: 4px; }
.jp-peft-studio .jp-peft-fields { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 6px 14px; }
.jp-peft-studio .jp-peft-field label { display: flex; gap: 6px; align-items: center; }
.jp-peft-studio .jp-peft-field input[type=text], .jp-peft-studio .jp-peft-field select { flex: 1; min-width: 60px; }
.jp-peft-studio .jp-peft-name { font-family: var(--jp-code-font-family, monospace); }
.jp-peft-studio .jp-peft-help { font-size: 11px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.jp-peft-studio .jp-peft-reset { padding: 0 5px !important; }
.jp-peft-studio .jp-peft-cell { font-family: var(--jp-code-font-family, monospace); background: var(--jp-cell-editor-background, #f7f7f7);
  border: 1px solid var(--jp-border-color2, #ddd); padding: 6px 8px; margin: 0; white-space: pre-wrap; }
.jp-peft-studio .jp-peft-actions { display: flex; gap: 6px; align-items: center; margin-top: 6px; }
.jp-peft-studio .jp-peft-table { border-collapse: collapse; margin-top: 4px; }
.jp-peft-studio .jp-peft-table td, .jp-peft-studio .jp-peft-table th { padding: 1px 8px; text-align: left; }
.jp-peft-studio details summary { cursor: pointer; margin: 6px 0; }
.jp-peft-studio input:disabled, .jp-peft-studio select:disabled { opacity: .4; cursor: not-allowed;
  background: var(--jp-layout-color2, #eee); }
.jp-peft-studio .jp-peft-tree.jp-peft-no-rank .jp-peft-c-rank,
.jp-peft-studio .jp-peft-tree.jp-peft-no-alpha .jp-peft-c-alpha { display: none; }
.jp-peft-studio .jp-peft-empty { padding: 8px 6px; font-style: italic; white-space: normal; }
.jp-peft-studio .jp-peft-layer.jp-peft-match { outline: 1px solid var(--jp-brand-color1, #1976d2); border-radius: 2px; }
@container (max-width: 900px) {
  .jp-peft-studio .jp-peft-left { flex-basis: 100%; }
  .jp-peft-studio .jp-peft-right { flex: 1 1 100%; }
  .jp-peft-studio .jp-peft-memory, .jp-peft-studio .jp-peft-param-chart { flex: 1 1 100%; }
  .jp-peft-studio .jp-peft-tree td.jp-peft-kind { white-space: normal; }
}
@container (max-width: 640px) {
  .jp-peft-studio .jp-peft-tree .jp-peft-kind { display: none; }
  .jp-peft-studio .jp-peft-tree td, .jp-peft-studio .jp-peft-tree th { padding: 2px 3px; }
  .jp-peft-studio .jp-peft-small { width: 34px; }
}
`;
