"""The console's Content-Security-Policy: no inline script or style, nothing from elsewhere.
A page may widen ``connect-src`` for what it must reach (the workflow page: the namespace's
codec server)."""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
