"""Learning-rate sweeps over seeds: a fair verdict for any optimizer without hand-picked numbers.

- ``grid``: the learning rates a sweep tries (``--lr-grid``);
- ``choose``: the rule that picks a learning rate and measures tunability;
- ``settings``: tuned settings as data, the committed ``optimizers/tuned.json``;
- ``sweep``: one case's sweep (stacked as one vectorised run where it can be), and many
  cases over processes (joblib) or a Dask cluster;
- ``__main__``: ``python -m optbench.tune``.
"""
