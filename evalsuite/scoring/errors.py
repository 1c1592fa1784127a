"""The one exception type of the scoring package.

Bad input (a predictions file that cannot be read, a line that is not JSON, a row without a
gold answer) surfaces as a ``ScoringError`` whose message names the file and the line, so
the CLI can print it as one line and exit with code 2 instead of a traceback.
"""

from evalsuite.errors import EvalsuiteError


class ScoringError(EvalsuiteError, ValueError):
    """Input to a scorer that cannot be graded as given; the message says how to fix it."""
