"""``evalsuite demo``: ``run`` drives the whole flow (model, checkpoints, API, workers,
tables), ``data`` writes the demo's problems in the ``--data-dir`` layout, ``services``
starts and stops the API and workers it needs."""
