"""The regression gate: ``cli`` (``evalsuite gate``), ``evidence`` (per-document values from
sample rows), ``compare`` (what makes two sides comparable), ``stats`` (paired bootstrap),
``report`` (Markdown, JUnit, JSON), and the two sources (``results_dir``, ``api_source``)."""
