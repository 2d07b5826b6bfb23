"""SAML 2.0 sign-in, one service provider per account."""
