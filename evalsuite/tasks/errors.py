"""Errors in task definitions, data and configuration, phrased for the person running eval."""

from evalsuite.errors import EvalsuiteError


class TaskError(EvalsuiteError, ValueError):
    """A task that cannot be found, read or run as defined; the message says how to fix it."""
