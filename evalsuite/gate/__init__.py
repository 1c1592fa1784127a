"""The regression gate's parts; ``evalsuite.gate`` is the entry point (see its docstring)."""
