"""Group claims: IdP groups (OIDC claim, SAML attribute) mapped to user groups at sign-in."""
