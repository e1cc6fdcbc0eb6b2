// anywidget entry of the studio (jupyter_peft/widgets/studio.py): `render` draws the view
// into `el` and returns the cleanup that removes every listener and purges the chart.

import { Chart } from "./chart";
import { STYLE } from "./style";
import type { WidgetModel } from "./types";
import { StudioView } from "./view";

function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  const style = document.createElement("style");
  style.textContent = STYLE;
  const view = new StudioView(model, new Chart());
  el.append(style);
  view.attach(el);
  return () => {
    view.destroy();
    style.remove();
  };
}

export default { render };
