"""The benchmark modules, installed with optbench: the matrix and the seed profile.

``optbench`` (``python -m optbench``) runs them from any folder; see ``optbench/__main__.py``.
"""
