"""The root of every error meant for the person at the keyboard.

The CLI prints these as one line and exits with code 2; anything else is a bug and keeps its
traceback.
"""


class EvalsuiteError(Exception):
    """A problem with the user's input or environment, explained with how to fix it."""
