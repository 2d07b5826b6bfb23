"""Per-namespace permissions of users and service accounts."""
