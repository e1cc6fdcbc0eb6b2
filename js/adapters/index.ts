// The adapter bench (anywidget front end). A view: Python's Adapters computes every value; this
// draws the adapters table, the compare table (cells that differ from the base marked), the merge
// controls with Python's preview, and a checkpoint slider per adapter loaded from a run. Commands go
// back as messages routed on `kind` (types.ts `Command`).
import { ensureStyle } from "../common/style";
import { STYLE } from "./style";
import type { AdapterRow, Comparison, MergeArgs, Merging, Model } from "./types";
import { el } from "../common/el";

export type { Model } from "./types";


function button(parent: HTMLElement, text: string, cls: string, onClick: () => void): HTMLButtonElement {
  const b = el("button", `jp-mod-styled ${cls}`, parent, text);
  b.addEventListener("click", onClick);
  return b;
}

const HEAD = ["adapter", "method", "targets", "ranks", "parameters", "bytes", "source", "", "checkpoint"];

/** Build the view in `root`; returns the cleanup anywidget calls when the view goes. */
export function mount(model: Model, root: HTMLElement): () => void {
  ensureStyle(root.ownerDocument, "adapters", STYLE);
  const box = el("div", "jp-peft-adapters", root);
  const table = el("table", "jp-peft-list", box);
  const bar = el("div", "jp-peft-bar", box);
  const status = el("span", "jp-peft-status jp-peft-muted", bar);
  const disable = button(bar, "Disable (base alone)", "jp-peft-disable", () => model.send({ kind: "disable" }));
  const error = el("div", "jp-peft-error", box);

  const compareBox = el("div", "jp-peft-box jp-peft-compare", box);
  el("b", "", compareBox, "Compare (greedy, one prompt a line)");
  const prompts = el("textarea", "jp-peft-prompts", compareBox);
  const cbar = el("div", "jp-peft-bar", compareBox);
  el("span", "jp-peft-muted", cbar, "new tokens");
  const tokens = el("input", "jp-peft-tokens jp-peft-weight", cbar);
  tokens.type = "number";
  tokens.value = "32";
  const run = button(cbar, "Compare", "jp-peft-run", () => {
    const lines = prompts.value.split("\n").filter((l) => l.trim());
    if (lines.length) model.send({ kind: "compare", prompts: lines, max_new_tokens: Number(tokens.value) || 32 });
  });
  const how = el("div", "jp-peft-how jp-peft-muted", compareBox);
  const out = el("table", "jp-peft-out", compareBox);

  const mergeBox = el("div", "jp-peft-box jp-peft-merge", box);
  el("b", "", mergeBox, "Merge into a new adapter (peft add_weighted_adapter)");
  const weights = el("div", "jp-peft-bar jp-peft-weights", mergeBox);
  const mbar = el("div", "jp-peft-bar", mergeBox);
  const type = el("select", "jp-peft-how-select", mbar);
  el("span", "jp-peft-muted", mbar, "density");
  const density = el("input", "jp-peft-density jp-peft-weight", mbar);
  el("span", "jp-peft-muted", mbar, "name");
  const mname = el("input", "jp-peft-merge-name", mbar);
  mname.value = "merged";
  const preview = el("div", "jp-peft-preview jp-peft-muted", mergeBox);
  const mergeArgs = (): MergeArgs => {
    const w: Record<string, number> = {};
    for (const input of Array.from(weights.querySelectorAll<HTMLInputElement>("input"))) {
      const v = Number(input.value);
      if (input.value.trim() && v) w[input.dataset.name ?? ""] = v;
    }
    return { weights: w, how: type.value, density: density.value.trim() ? Number(density.value) : null,
      name: mname.value.trim() || "merged" };
  };
  const askPreview = () => model.send({ kind: "preview", ...mergeArgs() });
  const merge = button(mbar, "Merge", "jp-peft-do-merge", () => model.send({ kind: "merge", ...mergeArgs() }));
  for (const input of [type, density, mname]) input.addEventListener("change", askPreview);

  const onRows = () => {
    const rows: AdapterRow[] = model.get("rows") ?? [];
    table.replaceChildren();
    const head = el("tr", "", table);
    for (const h of HEAD) el("th", "", head, h);
    for (const r of rows) table.appendChild(rowView(model, r));
    const kept = new Map(Array.from(weights.querySelectorAll<HTMLInputElement>("input")).map((i) => [i.dataset.name, i.value]));
    weights.replaceChildren();
    for (const r of rows) {
      el("span", "jp-peft-name", weights, r.name);
      const input = el("input", "jp-peft-weight", weights);
      input.dataset.name = r.name;
      input.value = kept.get(r.name) ?? "";
      input.placeholder = "0";
      input.addEventListener("change", askPreview);
    }
  };
  const onActive = () => {
    const active = model.get("active") ?? "";
    status.textContent = active ? `active: ${active}` : "adapters disabled: the base alone";
    disable.disabled = !active;
  };
  const onComparison = () => {
    const c = (model.get("comparison") ?? {}) as Partial<Comparison>;
    out.replaceChildren();
    how.textContent = c.how ?? "";
    if (!c.columns) return;
    const head = el("tr", "", out);
    for (const h of ["prompt", ...c.columns]) el("th", "", head, h);
    (c.cells ?? []).forEach((cells, i) => {
      const tr = el("tr", "", out);
      el("td", "jp-peft-muted", tr, c.prompts?.[i] ?? "");
      cells.forEach((cell, j) => {
        const td = el("td", c.differs?.[i]?.[j] ? "jp-peft-differs" : "", tr, cell);
        td.dataset.column = c.columns![j];
      });
    });
  };
  const onMerging = () => {
    const m = (model.get("merging") ?? {}) as Partial<Merging>;
    const types = m.types ?? [];
    if (Array.from(type.options).map((o) => o.value).join() !== types.join()) {
      const was = type.value;
      type.replaceChildren();
      for (const t of types) el("option", "", type, t).value = t;
      type.value = types.includes(was) ? was : types.includes("linear") ? "linear" : (types[0] ?? "");
    }
    preview.textContent = m.preview?.text ? `${m.preview.text} (before merging)` : "";
    merge.disabled = !types.length;
  };
  const onError = () => { error.textContent = model.get("error") ?? ""; };
  const onBusy = () => {
    const busy = !!model.get("busy");
    run.disabled = busy;
    box.dataset.busy = busy ? "1" : "";
  };
  const handlers: [string, () => void][] = [
    ["change:rows", onRows], ["change:active", onActive], ["change:comparison", onComparison],
    ["change:merging", onMerging], ["change:error", onError], ["change:busy", onBusy],
  ];
  for (const [event, cb] of handlers) model.on(event, cb);
  onRows(); onActive(); onComparison(); onMerging(); onError(); onBusy();
  return () => {
    for (const [event, cb] of handlers) model.off(event, cb);
    box.remove();
  };
}

/** One adapter's row: its numbers, Activate / Rename / Delete, and a slider over a run's checkpoints. */
function rowView(model: Model, r: AdapterRow): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.className = r.active ? "jp-peft-row jp-peft-row-active" : "jp-peft-row";
  tr.dataset.name = r.name;
  el("td", "jp-peft-name", tr, r.name);
  el("td", "", tr, r.method);
  el("td", "jp-peft-muted", tr, r.targets);
  el("td", "jp-peft-num", tr, r.ranks);
  el("td", "jp-peft-num", tr, r.params.toLocaleString("en-US"));
  el("td", "jp-peft-num", tr, r.bytes_text);
  el("td", "jp-peft-muted", tr, r.source);
  const actions = el("td", "", tr);
  const activate = button(actions, r.active ? "active" : "Activate", "jp-peft-activate",
    () => model.send({ kind: "activate", name: r.name }));
  activate.disabled = r.active;
  button(actions, "Rename", "jp-peft-rename", () => {
    const name = globalThis.prompt?.(`New name for ${r.name}`, r.name);
    if (name && name !== r.name) model.send({ kind: "rename", old: r.name, new: name });
  });
  button(actions, "Delete", "jp-peft-delete", () => model.send({ kind: "delete", name: r.name }));
  const scrub = el("td", "", tr);
  if (r.steps.length > 1 && r.step !== null) {
    const slider = el("input", "jp-peft-slider", scrub);
    slider.type = "range";
    slider.min = "0";
    slider.max = String(r.steps.length - 1);
    slider.value = String(Math.max(0, r.steps.indexOf(r.step)));
    const label = el("span", "jp-peft-muted", scrub, `step ${r.step}`);
    slider.addEventListener("input", () => { label.textContent = `step ${r.steps[Number(slider.value)]}`; });
    slider.addEventListener("change", () => model.send({ kind: "swap", name: r.name, step: r.steps[Number(slider.value)] }));
  }
  return tr;
}

export default {
  render({ model, el: root }: { model: Model; el: HTMLElement }) {
    return mount(model, root);
  },
};
