// Building DOM without HTML strings: module names are user-controlled text (a custom model
// can name a module `<img src=x onerror=...>`), so everything goes in through textContent
// and setAttribute, never innerHTML.

type Attrs = Record<string, string | number | boolean | undefined | null>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = String(value);
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** Replace the children of `node`. */
export function fill(node: Element, ...children: (Node | string | null | undefined | false)[]): void {
  node.replaceChildren(...(children.filter((c) => c !== null && c !== undefined && c !== false) as (Node | string)[]));
}

/** Listen and remember how to stop listening: the widget's cleanup calls `off()`. */
export class Listeners {
  private undo: (() => void)[] = [];

  on<E extends Event>(target: EventTarget, type: string, handler: (event: E) => void): void {
    const fn = handler as EventListener;
    target.addEventListener(type, fn);
    this.undo.push(() => target.removeEventListener(type, fn));
  }

  add(undo: () => void): void {
    this.undo.push(undo);
  }

  off(): void {
    for (const undo of this.undo.splice(0)) undo();
  }
}
