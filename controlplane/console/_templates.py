"""The console's Jinja2 environment (autoescape on for every template) and page rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from auth import Action

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# Templates ask the one policy with ``viewer.may(Action.X)``.
environment.globals["Action"] = Action


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """``template`` rendered with ``context`` (and the request and viewer, when signed in)."""
    context.setdefault("viewer", getattr(request.state, "viewer", None))
    body = environment.get_template(template).render(request=request, **context)
    return HTMLResponse(body, status_code=status_code)
