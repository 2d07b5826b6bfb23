"""The listener's TLS trust: the union of every routed namespace's client CA bundle."""

from __future__ import annotations

import logging

import grpc

from dataplane.gateway._routes import RouteTable

logger = logging.getLogger(__name__)


class TrustStore:
    """Server credentials whose client-CA trust follows the route table without a restart.

    A TLS listener holds one trust store, so it trusts the union of all bundles; binding a
    certificate to one namespace's bundle happens per request. gRPC calls the fetcher before
    every handshake, so it must be cheap: it only compares a generation number.
    """

    def __init__(
        self, *, server_cert_pem: bytes, server_key_pem: bytes, fallback_client_ca_pem: bytes
    ) -> None:
        self._key_cert_pairs = [(server_key_pem, server_cert_pem)]
        self._fallback = fallback_client_ca_pem
        self._fingerprints: frozenset[str] | None = None
        # (generation, PEM) swapped as one object: the fetcher runs on gRPC's own threads.
        self._desired: tuple[int, bytes] = (0, fallback_client_ca_pem)
        self._served_generation = 0

    def apply(self, table: RouteTable) -> None:
        """Trust the bundles of ``table`` for handshakes that start from now on."""
        bundles = {
            route.accepted_client_ca.fingerprint: route.accepted_client_ca
            for route in table.routes.values()
        }
        fingerprints = frozenset(bundles)
        if fingerprints == self._fingerprints:
            return
        self._fingerprints = fingerprints
        if bundles:
            pem = "\n".join(bundles[fp].pem.strip() for fp in sorted(bundles)).encode() + b"\n"
        else:
            # No tenant is routed: trust only the gateway's own CA so every tenant handshake
            # fails (gRPC needs some root to require client certificates at all).
            pem = self._fallback
        generation = self._desired[0] + 1
        self._desired = (generation, pem)
        logger.info("gateway TLS now trusts %d client CA bundle(s)", len(bundles))

    def credentials(self) -> grpc.ServerCredentials:
        generation, pem = self._desired
        self._served_generation = generation
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(pem),
            self._fetch,  # type: ignore[arg-type]  # grpc-stubs omit the documented None
            require_client_authentication=True,
        )

    def _configuration(self, root_pem: bytes) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            self._key_cert_pairs, root_certificates=root_pem
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        generation, pem = self._desired
        if generation == self._served_generation:
            return None
        self._served_generation = generation
        return self._configuration(pem)
