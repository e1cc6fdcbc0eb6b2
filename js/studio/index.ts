// anywidget entry of the studio (jupyter_peft/widgets/studio.py): `render` draws the view
// into `el` and returns the cleanup that removes every listener and purges the chart.

import Plotly from "plotly.js-basic-dist-min";
import { ParamChart, type PlotLike } from "../common/param_chart";
import { STYLE } from "./style";
import type { WidgetModel } from "./types";
import { StudioView } from "./view";

function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  const style = document.createElement("style");
  style.textContent = STYLE;
  const view = new StudioView(model, new ParamChart(Plotly as PlotLike));
  el.append(style);
  view.attach(el);
  return () => {
    view.destroy();
    style.remove();
  };
}

export default { render };
