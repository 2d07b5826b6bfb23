"""Sign-in: OIDC relying party, server-side web sessions and the CLI hand-off."""
