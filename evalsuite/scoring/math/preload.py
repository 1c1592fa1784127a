"""Imported once by the pool's forkserver: load every grading dependency there.

Workers forked from the server then start with sympy, the LaTeX parser and math-verify
in memory, so a worker replaced after a timeout is ready in milliseconds. Not meant to be
imported elsewhere: it would load the parser and hold BLAS to one thread in that process.
"""

from evalsuite.scoring.math.worker import prepare

prepare()
