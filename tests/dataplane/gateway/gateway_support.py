"""Helpers shared by the gateway tests (a module, since test files cannot import conftest)."""

from __future__ import annotations

from auth import KeyPair, parse_ca_bundle
from dataplane.gateway import Route

# Cell-side namespace ids (UUIDs), filled in when the fixtures register namespaces: routes
# carry them so the gateway can check the namespace inside task tokens.
CELL_NAMESPACE_IDS: dict[str, str] = {}


def route(namespace_id: str, address: str, ca: KeyPair) -> Route:
    """A routing entry whose accepted client CA bundle is ``ca``."""
    return Route(
        namespace_id,
        address,
        parse_ca_bundle(ca.cert_pem.decode()),
        CELL_NAMESPACE_IDS.get(namespace_id, ""),
    )
