"""HumanEval+ scoring: ``data`` (the problems file), ``samples`` (reading generations),
``truth`` (expected outputs and reference times, cached), ``evalplus`` and ``paper`` (the
two modes' per-program checks), ``score`` (the whole run over the sandbox), ``passk`` and
``cli`` (``evalsuite score humaneval-plus``). Programs run only in ``scoring.sandbox``."""
