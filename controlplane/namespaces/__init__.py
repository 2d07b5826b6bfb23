"""Namespaces: a tenant's unit of isolation, routed by the gateway to the account's cell."""
