"""Users of an account: invitations, account roles, namespace permissions."""
