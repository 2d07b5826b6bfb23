"""The ``stratus`` command line: one module per command group (``namespace.py``,
``apikey.py``, ...), the context and output every command shares in ``_context.py``."""

from controlplane.cli._app import app, main

__all__ = ["app", "main"]
