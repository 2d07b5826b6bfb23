"""The tenant OpenMetrics endpoint (``GET /api/v1/metrics``): per-namespace series of the
namespaces the caller may read metrics of, for the account's own Prometheus (docs/teams.md)."""
