"""Per-account quotas: how many namespaces, users, service accounts, API keys per principal and
async operations in flight an account may have. The operator sets them; defaults are Temporal
Cloud's."""
