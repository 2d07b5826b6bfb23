"""Sign-in fixtures (defined in oidc_support.py, importable by the tests by a unique name)."""

from oidc_support import oidc, owner_key

__all__ = ["oidc", "owner_key"]
