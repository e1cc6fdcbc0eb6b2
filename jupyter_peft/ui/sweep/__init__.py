"""The live sweep dashboard (anywidget): every trial's eval curve, the best so far, parameters vs
metric as parallel coordinates, progress and ETA, Stop and Write cell (js/sweep/ draws it)."""
