"""The widgets (anywidget): Python sides and view-models; state in traitlets, no maths.

- `studio/`: the module picker and plan editor (`jp.studio`, `%peft MODEL`);
- `dashboard/`: the live training dashboard and the static picture a finished run leaves;
- `param_chart.py`: the trainable-parameter chart data both show; `latest.py`: newest-job-wins
  background worker (the studio's estimates, its saved view);
- `svg.py`: the charts of the static views (what a notebook without its kernel shows);
- `plotly_asset.py`: the one plotly both widgets draw with, sent to a page once.

May import: every room below it (plan, model, memory, training, quant). The browser code is
in `js/`, built into `static/`.
"""
