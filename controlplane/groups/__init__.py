"""User groups: an account role and namespace permissions shared by their members."""
