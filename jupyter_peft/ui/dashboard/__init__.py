"""The training dashboard: a live view of a `Run`, and the static snapshot it leaves.

- `widget.py`: `Dashboard` (traits, streamed points, Stop / Save now); it watches a Run;
- `view.py`: the view-model (state line, progress, memory) computed from the Run's data;
- `snapshot.py`: the run as HTML with SVG charts, carried beside the widget, shown without a kernel;
- `resume.py`: the Resume button: the run that continues a stopped one, in the same dashboard.
"""
