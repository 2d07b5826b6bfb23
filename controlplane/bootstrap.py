"""First-start state of a data dir: database schema, operator key, gateway PKI."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from auth import KeyPair, SecretBox, generate_ca, generate_leaf
from controlplane.api_keys import service as api_keys
from controlplane.config import StratusSettings
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.kit.files import write_private
from controlplane.kit.migrate import migrate

GATEWAY_SANS = ["localhost", "127.0.0.1"]


@dataclass(frozen=True)
class GatewayPki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def ensure_gateway_pki(settings: StratusSettings) -> GatewayPki:
    pki = settings.pki_dir
    paths = GatewayPki(
        ca_cert=pki / "gateway-ca.pem",
        ca_key=pki / "gateway-ca.key",
        server_cert=pki / "gateway.pem",
        server_key=pki / "gateway.key",
    )
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        ca = generate_ca("Stratus gateway CA")
        write_private(paths.ca_key, ca.key_pem)
        paths.ca_cert.write_bytes(ca.cert_pem)
    if not (paths.server_cert.exists() and paths.server_key.exists()):
        ca = KeyPair(paths.ca_cert.read_bytes(), paths.ca_key.read_bytes())
        server = generate_leaf(ca, "localhost", valid_days=825, server_sans=GATEWAY_SANS)
        write_private(paths.server_key, server.key_pem)
        paths.server_cert.write_bytes(server.cert_pem)
    return paths


async def ensure_operator_key(settings: StratusSettings) -> Path:
    """Keep a valid operator key in ``<data-dir>/operator.key`` (0600); mint one if missing."""
    path = settings.operator_key_path
    engine = create_engine(settings.sqlalchemy_url)
    try:
        sessionmaker = create_sessionmaker(engine)
        async with unit_of_work(sessionmaker) as session:
            if path.exists() and await api_keys.operator_key_valid(
                session, path.read_text().strip()
            ):
                return path
            token = await api_keys.issue_operator_key(session)
        write_private(path, (token + "\n").encode())
        return path
    finally:
        await engine.dispose()


async def bootstrap(settings: StratusSettings) -> tuple[Path, GatewayPki]:
    data_dir = settings.resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    await asyncio.to_thread(migrate, settings.sqlalchemy_url)
    # Minted once, before the API and the worker start: both need the same key.
    SecretBox.from_file(settings.secrets_key_path)
    operator_key = await ensure_operator_key(settings)
    return operator_key, ensure_gateway_pki(settings)
