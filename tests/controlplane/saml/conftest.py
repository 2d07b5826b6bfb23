"""SAML fixtures (defined in saml_support.py, importable by the tests by a unique name)."""

from saml_support import saml

__all__ = ["saml"]
