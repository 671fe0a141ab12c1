# The optbench pytest plugin: --optbench-* options and the benchmark matrix.
pytest_plugins = ("optbench.plugin",)
