"""The analysis commands' defaults, apart from the numerics so that mounting the CLI (which
every ``evalsuite`` call does, the torch-free service image included) imports no torch."""

DEFAULT_TOP = 64  # singular values listed per module (the summaries use all of them)
DEFAULT_ITERATIONS = 50  # RaSA reconstruction: coordinate-descent iterations at most
DEFAULT_TOL = 1e-7  # stop when an iteration lowers the error by less than this share
