"""Service accounts: non-human principals, account-wide or scoped to one namespace."""
