"""What the per-module signals mean, in words: under the heatmap, in the snapshot, in the README."""

CAPTION = (
    "gradient norm: how hard the loss pulls on this module's adapter now (pre-clip); update: how far "
    "its weight delta moved since the last sample (since start: since training began); relative update: "
    "the adapter's delta over the frozen weight's norm. They say where the adapter changes, not what "
    "matters: a small update is not proof of a useless module, and a large one not proof of a useful one."
)
