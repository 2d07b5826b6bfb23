"""Where a sign-in started from the console returns to: a path of this console, never another
origin (no open redirect) and never the API (which answers JSON, not pages)."""

from __future__ import annotations

from urllib.parse import urlsplit

from controlplane.kit.errors import InvalidField

# The cookie that marks an OIDC sign-in as started from the console (next to the state cookie,
# sent only to the callback; SAML carries the same path as the RelayState instead).
RETURN_COOKIE = "stratus_console_return"
MAX_RETURN_PATH = 512


def console_path(value: str | None) -> str | None:
    """``value`` if it is a same-origin console path (``/namespaces/x?y``), else None."""
    if not value or len(value) > MAX_RETURN_PATH or not value.startswith("/"):
        return None
    # "//host" and "/\\host" are other origins to browsers; controls and spaces have no
    # business in a path (and some browsers strip them before resolving).
    if value.startswith(("//", "/\\")) or "\\" in value:
        return None
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.fragment:
        return None
    if parts.path == "/api" or parts.path.startswith("/api/"):
        return None
    return value


def checked_console_path(value: str | None) -> str | None:
    """None when absent (an API sign-in); the path when it is a console path; refused
    otherwise."""
    if value is None:
        return None
    path = console_path(value)
    if path is None:
        raise InvalidField(
            "return_to must be a path of this console (such as /namespaces), not a URL or an "
            "API path",
            field="return_to",
        )
    return path
