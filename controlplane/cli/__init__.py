"""The ``stratus`` command line."""

from controlplane.cli._app import app, main

__all__ = ["app", "main"]
