// For vitest only (no bundle imports it): an anywidget model with traits by name, events, and
// the messages and saves the view makes. Each widget's test mounts its view on one.

export class FakeModel {
  sent: object[] = [];
  saved = 0;
  private handlers = new Map<string, Set<(...a: any[]) => void>>();
  constructor(public traits: Record<string, any>) {}
  get(name: string) { return this.traits[name]; }
  set(name: string, value: any) { this.traits[name] = value; this.emit(`change:${name}`); }
  save_changes() { this.saved++; }
  on(event: string, cb: (...a: any[]) => void) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(cb);
  }
  off(event: string, cb: (...a: any[]) => void) { this.handlers.get(event)?.delete(cb); }
  emit(event: string, ...args: any[]) { for (const cb of this.handlers.get(event) ?? []) cb(...args); }
  send(content: object) { this.sent.push(content); }
  listeners() { return [...this.handlers.values()].reduce((n, s) => n + s.size, 0); }
}
