// The module tree: one row per group (e.g. `self_attn.q_proj` x 80), expandable to its layers.
// Pure functions decide what a click means and how a row looks; `TreeView` applies them to
// the DOM. Python decides what is ticked: a click only sends a command.

import { h, fill, Listeners } from "./dom";
import type { Command, Group, State } from "./types";

export type Tick = "all" | "some" | "none";

export function tickState(picked: number[] | undefined, count: number): Tick {
  const n = picked ? picked.length : 0;
  if (n === 0) return "none";
  return n >= count ? "all" : "some";
}

/** Every word of the filter appears in the group's role, template, kind, section or block. */
export function matchesFilter(group: Group, filter: string): boolean {
  const hay = `${group.role} ${group.template} ${group.kind} ${group.section} ${group.block}`.toLowerCase();
  return filter
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((word) => hay.includes(word));
}

/** The command a click on a group's box sends: tick all unless all are ticked. */
export function groupClick(group: Group, picked: number[] | undefined): Command {
  return { kind: "pick", role: group.role, on: tickState(picked, group.count) !== "all" };
}

/** The command a click on one layer's box sends; with shift, the range from the last click. */
export function layerClick(role: string, member: number, on: boolean, last: number | null, shift: boolean): Command {
  const from = shift && last !== null ? Math.min(last, member) : member;
  const to = shift && last !== null ? Math.max(last, member) : member;
  const members: number[] = [];
  for (let i = from; i <= to; i++) members.push(i);
  return { kind: "pick", role, members, on };
}

/** "Linear 4096×4096 bfloat16": what one member of the group is. */
export function moduleText(group: Group): string {
  const kind = group.parameter ? `${group.kind}.${group.parameter}` : group.kind;
  return [kind, group.shape, group.dtype].filter(Boolean).join(" ");
}

export function layerLabel(group: Group, member: number): string {
  const layer = group.layers[member];
  return layer === null || layer === undefined ? String(member) : String(layer);
}

interface Row {
  group: Group;
  tr: HTMLTableRowElement;
  box: HTMLInputElement;
  toggle: HTMLButtonElement;
  rank: HTMLInputElement;
  alpha: HTMLInputElement;
  trainable: HTMLTableCellElement;
  note: HTMLTableRowElement;
  noteCell: HTMLTableCellElement;
  layersRow: HTMLTableRowElement;
  layersCell: HTMLTableCellElement;
  layerBoxes: HTMLInputElement[];
}

export class TreeView {
  readonly el: HTMLTableElement;
  private body: HTMLTableSectionElement;
  private rows = new Map<string, Row>();
  private expanded = new Set<string>();
  private lastLayer = new Map<string, number>();
  private filter = "";
  private listeners = new Listeners();

  constructor(private send: (command: Command) => void) {
    this.body = h("tbody");
    const head = h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { class: "jp-peft-c-box" }),
        h("th", { text: "group" }),
        h("th", { text: "module" }),
        h("th", { class: "jp-peft-num", text: "×" }),
        h("th", { class: "jp-peft-num", text: "params" }),
        h("th", { class: "jp-peft-num", text: "rank" }),
        h("th", { class: "jp-peft-num", text: "alpha" }),
        h("th", { class: "jp-peft-num", text: "trainable" }),
      ),
    );
    this.el = h("table", { class: "jp-peft-tree" }, head, this.body);
  }

  /** Rebuild the rows (new groups: a new model, or after Apply). */
  build(groups: Group[]): void {
    this.listeners.off();
    this.rows.clear();
    fill(this.body);
    for (const group of groups) this.rows.set(group.role, this.buildRow(group));
  }

  setFilter(filter: string): void {
    this.filter = filter;
  }

  /** Bring every row in line with the state (only what changed is touched by the browser). */
  update(state: State, perGroupRank: boolean, perGroupAlpha: boolean): void {
    for (const row of this.rows.values()) this.updateRow(row, state, perGroupRank, perGroupAlpha);
  }

  destroy(): void {
    this.listeners.off();
  }

  private buildRow(group: Group): Row {
    const box = h("input", { type: "checkbox", "aria-label": `adapt ${group.role}` });
    const toggle = h("button", { class: "jp-peft-toggle", type: "button", title: "show layers" });
    toggle.textContent = group.count > 1 ? "▸" : "";
    toggle.disabled = group.count <= 1;
    const rank = h("input", { type: "text", inputmode: "numeric", class: "jp-peft-small", "aria-label": `rank of ${group.role}` });
    const alpha = h("input", { type: "text", inputmode: "decimal", class: "jp-peft-small", "aria-label": `alpha of ${group.role}` });
    const trainable = h("td", { class: "jp-peft-num jp-peft-trainable" });
    const name = h("td", { class: "jp-peft-role", title: group.template }, toggle, h("span", { text: group.role }));
    const tr = h(
      "tr",
      { class: "jp-peft-group", "data-role": group.role, "data-section": group.section },
      h("td", { class: "jp-peft-c-box" }, box),
      name,
      h("td", { class: "jp-peft-kind", text: moduleText(group) }),
      h("td", { class: "jp-peft-num", text: String(group.count) }),
      h("td", { class: "jp-peft-num", text: group.params_text, title: group.each_text ? `${group.each_text} each` : "" }),
      h("td", { class: "jp-peft-num" }, rank),
      h("td", { class: "jp-peft-num" }, alpha),
      trainable,
    );
    const noteCell = h("td", { colspan: 8, class: "jp-peft-error" });
    const note = h("tr", { class: "jp-peft-note" }, noteCell);
    const layersCell = h("td", { colspan: 8 });
    const layersRow = h("tr", { class: "jp-peft-layers" }, layersCell);
    this.body.append(tr, note, layersRow);
    const row: Row = { group, tr, box, toggle, rank, alpha, trainable, note, noteCell, layersRow, layersCell, layerBoxes: [] };
    this.listeners.on(box, "click", (e: Event) => {
      e.preventDefault(); // Python decides; the box shows the state that comes back
      this.send(groupClick(group, this.picked(row)));
    });
    this.listeners.on(toggle, "click", () => this.toggle(row));
    this.listeners.on(rank, "change", () => this.send({ kind: "rank", role: group.role, value: rank.value.trim() || null }));
    this.listeners.on(alpha, "change", () => this.send({ kind: "alpha", role: group.role, value: alpha.value.trim() || null }));
    return row;
  }

  private current: State | null = null;

  private picked(row: Row): number[] | undefined {
    return this.current?.picked[row.group.role];
  }

  private toggle(row: Row): void {
    const role = row.group.role;
    if (this.expanded.has(role)) this.expanded.delete(role);
    else this.expanded.add(role);
    if (this.expanded.has(role) && row.layerBoxes.length === 0) this.buildLayers(row);
    if (this.current) this.updateRow(row, this.current, true, true);
  }

  private buildLayers(row: Row): void {
    const { group } = row;
    const grid = h("div", { class: "jp-peft-grid" });
    for (let i = 0; i < group.count; i++) {
      const box = h("input", { type: "checkbox", "aria-label": `${group.role} layer ${layerLabel(group, i)}` });
      const label = h("label", { class: "jp-peft-layer", title: `layer ${layerLabel(group, i)}` }, box, h("span", { text: layerLabel(group, i) }));
      this.listeners.on(box, "click", (e: MouseEvent) => {
        e.preventDefault();
        const on = !(this.picked(row) ?? []).includes(i);
        this.send(layerClick(group.role, i, on, this.lastLayer.get(group.role) ?? null, e.shiftKey));
        this.lastLayer.set(group.role, i);
      });
      grid.append(label);
      row.layerBoxes.push(box);
    }
    fill(row.layersCell, h("div", { class: "jp-peft-hint", text: "shift-click ticks a range" }), grid);
  }

  private updateRow(row: Row, state: State, perGroupRank: boolean, perGroupAlpha: boolean): void {
    this.current = state;
    const { group } = row;
    const picked = state.picked[group.role];
    const tick = tickState(picked, group.count);
    const can = state.targetable[group.role] !== false;
    row.box.checked = tick === "all";
    row.box.indeterminate = tick === "some";
    row.box.disabled = !can;
    row.tr.classList.toggle("jp-peft-off", !can);
    row.tr.classList.toggle("jp-peft-on", tick !== "none");
    row.tr.hidden = !matchesFilter(group, this.filter);
    const open = this.expanded.has(group.role) && !row.tr.hidden;
    row.layersRow.hidden = !open;
    row.toggle.textContent = group.count > 1 ? (open ? "▾" : "▸") : "";
    setInput(row.rank, state.ranks[group.role], state.defaults.rank, perGroupRank && can);
    setInput(row.alpha, state.alphas[group.role], state.defaults.alpha, perGroupAlpha && can);
    const stat = state.numbers.per_group?.[group.role];
    row.trainable.textContent = stat ? stat.text : "";
    const error = state.field_errors[`ranks.${group.role}`] ?? state.field_errors[`alphas.${group.role}`] ?? "";
    row.noteCell.textContent = error;
    row.note.hidden = !error || row.tr.hidden;
    row.rank.classList.toggle("jp-peft-bad", Boolean(state.field_errors[`ranks.${group.role}`]));
    row.alpha.classList.toggle("jp-peft-bad", Boolean(state.field_errors[`alphas.${group.role}`]));
    if (open) {
      const set = new Set(picked ?? []);
      row.layerBoxes.forEach((box, i) => {
        box.checked = set.has(i);
        box.disabled = !can;
      });
    }
  }
}

function setInput(input: HTMLInputElement, value: number | undefined, fallback: number | undefined, enabled: boolean): void {
  input.disabled = !enabled;
  input.placeholder = fallback === undefined || fallback === null ? "" : String(fallback);
  if (document.activeElement !== input && !input.classList.contains("jp-peft-bad")) {
    input.value = value === undefined ? "" : String(value);
  }
}
