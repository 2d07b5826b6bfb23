"""The HTTP API's layer above the domains: the request dependencies that authenticate a caller
(against the API-key and sign-in domains) and hand out domain services (``deps``)."""
