"""The ``stratus`` command line."""

from controlplane.cli import _login as _login  # registers `stratus login|logout`
from controlplane.cli._app import app, main

__all__ = ["app", "main"]
