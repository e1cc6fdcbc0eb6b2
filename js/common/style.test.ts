// @vitest-environment happy-dom
// Each widget's CSS is scoped under its own root (the class its render puts on its outermost
// element), so the studio and the dashboard cannot restyle each other or the page; and
// injecting a widget's style again adds nothing.

import { afterEach, describe, expect, it } from "vitest";
import { mount, type Model } from "../dashboard/index";
import { STYLE as DASHBOARD_STYLE } from "../dashboard/style";
import { STYLE as STUDIO_STYLE } from "../studio/style";
import type { WidgetModel } from "../studio/types";
import { StudioView } from "../studio/view";
import { ensureStyle, STYLE_ATTR } from "./style";

/** Split a selector list on its top-level commas (not those inside (), [] or quotes). */
function splitSelectors(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = "";
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "(" || c === "[") depth++;
    else if (c === ")" || c === "]") depth--;
    else if (c === "," && depth === 0) {
      out.push(list.slice(start, i));
      start = i + 1;
    }
  }
  out.push(list.slice(start));
  return out.map((s) => s.trim().replace(/\s+/g, " "));
}

/** Every style rule's selector list, in order; grouping at-rules are entered, others refused. */
function ruleSelectors(css: string): string[] {
  const text = css.replace(/\/\*[\s\S]*?\*\//g, "");
  const rules: string[] = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf("{", i);
    if (open < 0) {
      expect(text.slice(i).trim(), "text after the last rule").toBe("");
      break;
    }
    let depth = 1;
    let close = open + 1;
    for (; depth > 0; close++) {
      if (close >= text.length) throw new Error(`unclosed block after ${text.slice(i, open)}`);
      if (text[close] === "{") depth++;
      else if (text[close] === "}") depth--;
    }
    const prelude = text.slice(i, open).trim();
    const body = text.slice(open + 1, close - 1);
    if (prelude.startsWith("@")) {
      // @media / @supports / @container hold rules of their own; @keyframes, @font-face and
      // the like define page-wide names, which a widget must not do
      if (!/^@(media|supports|container)\b/.test(prelude)) throw new Error(`a page-wide at-rule: ${prelude}`);
      rules.push(...ruleSelectors(body));
    } else {
      expect(prelude, `a rule without a selector before {${body}}`).not.toBe("");
      expect(body, `a nested block in ${prelude}`).not.toContain("{");
      rules.push(prelude);
    }
    i = close;
  }
  return rules;
}

/** The selectors of `css` that do not start with `.root` (the root itself or inside it). */
function unscoped(css: string, root: string): string[] {
  const scoped = new RegExp(`^\\.${root}(?![\\w-])`);
  return ruleSelectors(css).flatMap(splitSelectors).filter((s) => !scoped.test(s));
}

/** How the browser's CSSOM (happy-dom's here) reads the same text: the rules' selectors. */
function cssomSelectors(css: string): string[] {
  const style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);
  const flat = (rules: CSSRuleList): CSSStyleRule[] =>
    Array.from(rules).flatMap((r) => ("selectorText" in r ? [r as CSSStyleRule] : flat((r as CSSGroupingRule).cssRules)));
  const rules = flat(style.sheet!.cssRules); // @media / @container: the rules inside them
  style.remove();
  return rules.map((r) => r.selectorText.replace(/\s+/g, " ").trim());
}

const quietStudioModel: WidgetModel = {
  get: (() => undefined) as WidgetModel["get"],
  on() {},
  off() {},
  send() {},
};

const quietDashboardModel: Model = {
  get: (() => undefined) as Model["get"],
  on() {},
  off() {},
  send() {},
};

const noPlot = { newPlot() {}, react() {}, extendTraces() {}, purge() {} };

/** The class the studio's render puts on its outermost element. */
function studioRoot(): string {
  const view = new StudioView(quietStudioModel);
  const cls = view.root.classList[0];
  view.destroy();
  return cls;
}

/** The class the dashboard's render puts on its outermost element. */
function dashboardRoot(): string {
  const el = document.createElement("div");
  const cleanup = mount(quietDashboardModel, el, noPlot);
  const cls = el.firstElementChild!.classList[0];
  cleanup();
  return cls;
}

afterEach(() => {
  for (const s of Array.from(document.head.querySelectorAll(`style[${STYLE_ATTR}]`))) s.remove();
});

describe("widget styles", () => {
  it("the two widgets have distinct root classes", () => {
    expect(studioRoot()).toBe("jp-peft-studio");
    expect(dashboardRoot()).toBe("jp-peft-dashboard");
  });

  it.each([
    ["studio", STUDIO_STYLE, studioRoot],
    ["dashboard", DASHBOARD_STYLE, dashboardRoot],
  ])("every rule of the %s's CSS is scoped under its root class", (_name, css, root) => {
    const selectors = ruleSelectors(css);
    expect(selectors.length).toBeGreaterThan(5);
    // the parse here sees the rules the CSSOM sees (none hidden from the check)
    expect(selectors.map((s) => s.replace(/\s+/g, " ").trim())).toEqual(cssomSelectors(css));
    expect(unscoped(css, root())).toEqual([]);
  });

  it("the check itself catches an unscoped selector, in a list, in @media, and a lookalike root", () => {
    const css = `.jp-peft-studio .a { color: red; }
      .jp-peft-studio .b, .c[data-x="1,2"] { color: red; }
      @media (max-width: 600px) { .jp-peft-studio .d { color: red; } .e { color: red; } }
      .jp-peft-studio-x .f { color: red; }
      .jp-peft-studio:hover, .jp-peft-studio > .g, .jp-peft-studio.h { color: red; }`;
    expect(unscoped(css, "jp-peft-studio")).toEqual(['.c[data-x="1,2"]', ".e", ".jp-peft-studio-x .f"]);
    expect(() => ruleSelectors("@keyframes spin { from { opacity: 0; } }")).toThrow(/page-wide/);
  });

  it("no class of one widget's CSS is styled by the other's (the progress fill is not the studio's bar)", () => {
    expect(DASHBOARD_STYLE).not.toMatch(/\.jp-peft-bar(?![\w-])/);
    expect(DASHBOARD_STYLE).toContain(".jp-peft-dashboard .jp-peft-progress-fill");
  });
});

describe("style injection", () => {
  const ours = (key: string) => document.head.querySelectorAll(`style[${STYLE_ATTR}="${key}"]`);

  it("puts each widget's style in once, however often it is asked", () => {
    const first = ensureStyle(document, "studio", STUDIO_STYLE);
    expect(ensureStyle(document, "studio", STUDIO_STYLE)).toBe(first);
    ensureStyle(document, "dashboard", DASHBOARD_STYLE);
    expect(ours("studio")).toHaveLength(1);
    expect(ours("dashboard")).toHaveLength(1);
    expect(ours("studio")[0].textContent).toBe(STUDIO_STYLE);
    expect(ours("dashboard")[0].textContent).toBe(DASHBOARD_STYLE);
  });

  it("another build of the same widget replaces the text in place", () => {
    const style = ensureStyle(document, "studio", ".jp-peft-studio { color: red; }");
    expect(ensureStyle(document, "studio", STUDIO_STYLE)).toBe(style);
    expect(ours("studio")).toHaveLength(1);
    expect(style.textContent).toBe(STUDIO_STYLE);
  });

  it("two dashboards on a page share one style, which outlives their views", () => {
    const a = document.createElement("div");
    const b = document.createElement("div");
    const cleanA = mount(quietDashboardModel, a, noPlot);
    const cleanB = mount(quietDashboardModel, b, noPlot);
    expect(ours("dashboard")).toHaveLength(1);
    expect(a.querySelector("style")).toBeNull(); // not inside the view: in the head
    cleanA();
    cleanB();
    expect(ours("dashboard")).toHaveLength(1);
  });
});
