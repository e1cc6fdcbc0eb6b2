"""The adapter bench's widget (anywidget): a view of `adapter_bench.Adapters`; state in traits,
commands from the page as messages routed on `kind`. It may import adapter_bench and ui/ helpers."""
