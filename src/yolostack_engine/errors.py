"""Errors raised by the inference engine."""


class EngineError(RuntimeError):
    """A model could not be loaded or run (missing file, unknown task, missing runtime)."""
