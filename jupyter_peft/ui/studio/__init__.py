"""The studio widget: pick modules, ranks and method on the live model; see counts and memory.

- `widget.py`: `Studio` (traits and commands); `state.py`: the JSON the page draws;
- `draft.py`: the editable plan as the user builds it; `memory_panel.py`: the memory panel;
- `static_view.py`: the studio as HTML, which the saved notebook shows where the widget cannot be drawn.
"""
