// One <style> per widget kind per document: every view of that widget shares it, and putting
// it in again (another view, a re-render) changes nothing. Each widget's rules are scoped under
// its own root class (the studio's .jp-peft-studio, the dashboard's .jp-peft-dashboard), so a
// widget's style cannot restyle the other widget nor the page around it.

/** The attribute that names whose style a <style> element is. */
export const STYLE_ATTR = "data-jp-peft-style";

/** Put `css` into `doc`'s head under `key` unless it is there already; returns the element. */
export function ensureStyle(doc: Document, key: string, css: string): HTMLStyleElement {
  for (const found of Array.from(doc.head.querySelectorAll<HTMLStyleElement>(`style[${STYLE_ATTR}]`))) {
    if (found.getAttribute(STYLE_ATTR) !== key) continue;
    if (found.textContent !== css) found.textContent = css; // another build of the widget
    return found;
  }
  const style = doc.createElement("style");
  style.setAttribute(STYLE_ATTR, key);
  style.textContent = css;
  doc.head.append(style);
  return style;
}
