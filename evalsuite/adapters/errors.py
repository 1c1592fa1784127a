"""The one exception type of the adapters package.

Every problem with a user's files (config, tensors, shapes, a base made for another model)
surfaces as an ``AdapterError`` whose message names the file, the tensor and what was
expected, so the CLI can print it without a traceback.
"""

from evalsuite.errors import EvalsuiteError


class AdapterError(EvalsuiteError, ValueError):
    """A checkpoint or base model that cannot be read, merged or exported as asked."""
