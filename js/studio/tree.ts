// The module tree: one row per group (e.g. `self_attn.q_proj` x 80), expandable to its layers.
// Pure functions decide what a click means and how a row looks; `TreeView` applies them to
// the DOM. Python decides what is ticked: a click only sends a command.

import { h, fill, Listeners } from "./dom";
import type { Command, Group, PickCommand, State } from "./types";

export type Tick = "all" | "some" | "none";

export function tickState(picked: number[] | undefined, count: number): Tick {
  const n = picked ? picked.length : 0;
  if (n === 0) return "none";
  return n >= count ? "all" : "some";
}

/** The full module path of each member (the template with its layer index). */
export function memberPaths(group: Group): string[] {
  return group.layers.map((layer) => (layer === null || layer === undefined ? group.template : group.template.replace("*", String(layer))));
}

/** Which members a filter picks out: null when the group's own text (role, template, kind, section,
 * block) holds every word; else the members whose full path holds the words it lacks
 * (`layers.2`, `3.mlp`); [] when the filter does not match the group at all. */
export function memberMatches(group: Group, filter: string): number[] | null {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const hay = `${group.role} ${group.template} ${group.kind} ${group.section} ${group.block}`.toLowerCase();
  const rest = words.filter((word) => !hay.includes(word));
  if (!rest.length) return null;
  const out: number[] = [];
  memberPaths(group).forEach((path, i) => {
    const full = path.toLowerCase();
    if (rest.every((word) => full.includes(word))) out.push(i);
  });
  return out;
}

/** Every word of the filter appears in the group's text or in one member's full path. */
export function matchesFilter(group: Group, filter: string): boolean {
  const found = memberMatches(group, filter);
  return found === null || found.length > 0;
}

/** How long after the last keystroke a rank or alpha goes to Python (Enter or leaving the field: at once). */
export const TYPE_DELAY_MS = 400;

/** The command a click on a group's box sends: tick all unless all are ticked. */
export function groupClick(group: Group, picked: number[] | undefined): PickCommand {
  return { kind: "pick", role: group.role, on: tickState(picked, group.count) !== "all" };
}

/** The command a click on one layer's box sends; with shift, the range from the last click. */
export function layerClick(role: string, member: number, on: boolean, last: number | null, shift: boolean): PickCommand {
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
  private empty: HTMLTableCellElement;
  private emptyRow: HTMLTableRowElement;

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
        h("th", { class: "jp-peft-kind", text: "module" }),
        h("th", { class: "jp-peft-num", text: "×" }),
        h("th", { class: "jp-peft-num", text: "params" }),
        h("th", { class: "jp-peft-num jp-peft-c-rank", text: "rank" }),
        h("th", { class: "jp-peft-num jp-peft-c-alpha", text: "alpha" }),
        h("th", { class: "jp-peft-num", text: "trainable" }),
      ),
    );
    this.empty = h("td", { colspan: 8, class: "jp-peft-muted jp-peft-empty" });
    this.emptyRow = h("tr", { class: "jp-peft-no-match", hidden: true }, this.empty);
    this.el = h("table", { class: "jp-peft-tree" }, head, this.body);
  }

  /** Rebuild the rows (new groups: a new model, or after Apply). */
  build(groups: Group[]): void {
    this.listeners.off();
    this.rows.clear();
    fill(this.body);
    for (const group of groups) this.rows.set(group.role, this.buildRow(group));
    this.body.append(this.emptyRow);
  }

  setFilter(filter: string): void {
    this.filter = filter;
  }

  /** Bring every row in line with the state (only what changed is touched by the browser). */
  update(state: State, perGroupRank: boolean, perGroupAlpha: boolean): void {
    // a method without per-group ranks or alphas (ia3, prompt tuning...) has no such columns
    this.el.classList.toggle("jp-peft-no-rank", !perGroupRank);
    this.el.classList.toggle("jp-peft-no-alpha", !perGroupAlpha);
    let shown = 0;
    for (const row of this.rows.values()) {
      this.updateRow(row, state, perGroupRank, perGroupAlpha);
      if (!row.tr.hidden) shown++;
    }
    this.emptyRow.hidden = shown > 0 || this.rows.size === 0;
    this.empty.textContent = `no group or module path matches “${this.filter.trim()}”`;
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
    const name = h("td", { class: "jp-peft-role", title: `${group.template}: ${moduleText(group)}` }, toggle,
      h("span", { text: group.role }));
    const tr = h(
      "tr",
      { class: "jp-peft-group", "data-role": group.role, "data-section": group.section },
      h("td", { class: "jp-peft-c-box" }, box),
      name,
      h("td", { class: "jp-peft-kind", text: moduleText(group) }),
      h("td", { class: "jp-peft-num", text: String(group.count) }),
      h("td", { class: "jp-peft-num", text: group.params_text, title: group.each_text ? `${group.each_text} each` : "" }),
      h("td", { class: "jp-peft-num jp-peft-c-rank" }, rank),
      h("td", { class: "jp-peft-num jp-peft-c-alpha" }, alpha),
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
    this.typed(rank, (value) => this.send({ kind: "rank", role: group.role, value }));
    this.typed(alpha, (value) => this.send({ kind: "alpha", role: group.role, value }));
    return row;
  }

  private current: State | null = null;

  /** A rank or alpha goes to Python as it is typed (TYPE_DELAY_MS after the last key), and at
   * once on Enter or leaving the field; the same value is not sent twice. */
  private typed(input: HTMLInputElement, send: (value: string | null) => void): void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let sent: string | null | undefined;
    const now = () => {
      clearTimeout(timer);
      timer = undefined;
      const value = input.value.trim() || null;
      if (value === sent) return;
      sent = value;
      send(value);
    };
    this.listeners.on(input, "input", () => {
      clearTimeout(timer);
      timer = setTimeout(now, TYPE_DELAY_MS);
    });
    this.listeners.on(input, "change", now);
    this.listeners.on(input, "focus", () => { sent = input.value.trim() || null; });
    this.listeners.add(() => clearTimeout(timer));
  }

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
    const matches = memberMatches(group, this.filter);
    row.tr.hidden = matches !== null && matches.length === 0;
    // a filter that picks out some layers (`layers.2`) opens the group on them
    const some = matches !== null && matches.length > 0 && matches.length < group.count;
    if (some && row.layerBoxes.length === 0) this.buildLayers(row);
    const open = (this.expanded.has(group.role) || some) && !row.tr.hidden;
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
      const hit = new Set(some ? matches : []);
      row.layerBoxes.forEach((box, i) => {
        box.checked = set.has(i);
        box.disabled = !can;
        box.parentElement?.classList.toggle("jp-peft-match", hit.has(i));
      });
    }
  }
}

function setInput(input: HTMLInputElement, value: number | undefined, fallback: number | null | undefined, enabled: boolean): void {
  input.disabled = !enabled;
  input.placeholder = fallback === undefined || fallback === null ? "" : String(fallback);
  if (document.activeElement !== input && !input.classList.contains("jp-peft-bad")) {
    input.value = value === undefined ? "" : String(value);
  }
}
