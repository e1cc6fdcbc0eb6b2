// The method's options form, generated from peft's config dataclass (Option.to_json in
// methods.py): one field per option, by its widget kind. Nothing here knows any method.

import { h, fill, Listeners } from "./dom";
import type { Command, OptionField, State } from "./types";

/** The value a field shows: the user's, else peft's default. */
export function shownValue(field: OptionField, options: Record<string, unknown>): unknown {
  return field.name in options ? options[field.name] : field.default;
}

/** Text for a text or YAML input (JSON is valid YAML for lists and mappings). */
export function asText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** The command a changed input sends; Python checks and coerces the value. */
export function fieldCommand(field: OptionField, input: HTMLInputElement | HTMLSelectElement): Command {
  let value: unknown;
  if (field.widget === "bool") value = (input as HTMLInputElement).checked;
  else if (field.widget === "choice") value = field.choices[Number(input.value)];
  else if (field.widget === "int" || field.widget === "float") value = input.value.trim() === "" ? null : Number(input.value);
  else value = input.value;
  return { kind: "option", name: field.name, value, widget: field.widget };
}

interface Field {
  field: OptionField;
  input: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
  reset: HTMLButtonElement;
}

export class OptionsForm {
  readonly el: HTMLElement;
  private fields: Field[] = [];
  private listeners = new Listeners();

  constructor(private send: (command: Command) => void) {
    this.el = h("div", { class: "jp-peft-form" });
  }

  build(fields: OptionField[]): void {
    this.listeners.off();
    this.fields = [];
    const primary = h("div", { class: "jp-peft-fields" });
    const more = h("div", { class: "jp-peft-fields" });
    for (const field of fields) (field.primary ? primary : more).append(this.buildField(field));
    const rest = fields.filter((f) => !f.primary).length;
    const details = rest ? h("details", {}, h("summary", { text: `more options (${rest})` }), more) : null;
    fill(this.el, primary, details);
  }

  update(state: State): void {
    for (const f of this.fields) {
      const value = shownValue(f.field, state.options);
      if (document.activeElement !== f.input) setValue(f, value);
      const error = state.field_errors[f.field.name] ?? issueFor(state, f.field.name);
      f.error.textContent = error;
      f.error.hidden = !error;
      f.input.classList.toggle("jp-peft-bad", Boolean(error));
      f.reset.hidden = !(f.field.name in state.options);
    }
  }

  destroy(): void {
    this.listeners.off();
  }

  private buildField(field: OptionField): HTMLElement {
    const input = makeInput(field);
    const error = h("div", { class: "jp-peft-error" });
    const reset = h("button", { type: "button", class: "jp-peft-reset", title: "back to peft's default", text: "×" });
    this.fields.push({ field, input, error, reset });
    this.listeners.on(input, "change", () => this.send(fieldCommand(field, input)));
    this.listeners.on(reset, "click", () => this.send({ kind: "option", name: field.name, value: null, widget: field.widget }));
    return h(
      "div",
      { class: "jp-peft-field", "data-option": field.name, title: field.help },
      h("label", {}, h("span", { class: "jp-peft-name", text: field.name }), input, reset),
      h("div", { class: "jp-peft-help", text: field.help }),
      error,
    );
  }
}

function makeInput(field: OptionField): HTMLInputElement | HTMLSelectElement {
  if (field.widget === "bool") return h("input", { type: "checkbox", "aria-label": field.name });
  if (field.widget === "choice") {
    const select = h("select", { "aria-label": field.name });
    field.choices.forEach((choice, i) => select.append(h("option", { value: String(i), text: asText(choice) || "null" })));
    return select;
  }
  const numeric = field.widget === "int" || field.widget === "float";
  return h("input", { type: "text", inputmode: numeric ? "decimal" : "text", "aria-label": field.name, placeholder: field.type });
}

function setValue(f: Field, value: unknown): void {
  const { field, input } = f;
  if (field.widget === "bool") (input as HTMLInputElement).checked = value === true;
  else if (field.widget === "choice") {
    const index = field.choices.findIndex((c) => JSON.stringify(c) === JSON.stringify(value));
    input.value = String(index);
  } else input.value = asText(value);
}

function issueFor(state: State, name: string): string {
  const issue = state.issues.find((i) => i.key === name);
  return issue ? issue.message : "";
}
