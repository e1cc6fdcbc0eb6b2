"""The training dashboard: a live view of a `Run`, and the static snapshot it leaves.

- `widget.py`: `Dashboard` (traits, streamed points, Stop / Save now); it watches a Run;
- `view.py`: the view-model (state line, progress, memory) computed from the Run's data;
- `snapshot.py`: the finished run as HTML with SVG charts, shown without a kernel.
"""
