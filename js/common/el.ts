// One element, appended: the widgets build their DOM with it (the studio has its own `h` in
// js/studio/dom.ts for nested trees).

/** A `tag` element with class `cls` (none when "") and `text`, appended to `parent`. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, parent: HTMLElement, text = "") {
  const node = parent.ownerDocument.createElement(tag);
  if (cls) node.className = cls;
  node.textContent = text;
  parent.appendChild(node);
  return node;
}
