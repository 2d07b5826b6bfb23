"""The web console: server-rendered pages (Jinja2 + htmx) served by the API process at ``/``.

Pages call the same services as the API (and so the one ``auth.authorize`` and the same audit
events); see docs/decisions/0003-console-server-rendered.md.
"""

from controlplane.console._app import create_console
from controlplane.console._csp import CONTENT_SECURITY_POLICY

__all__ = ["CONTENT_SECURITY_POLICY", "create_console"]
