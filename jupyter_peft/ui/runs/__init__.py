"""The runs table (anywidget): `jp.runs()` shown as a sortable table with a checkbox per run and a
Compare button drawing the overlay (records/compare.py computes it; js/runs/ draws it)."""
