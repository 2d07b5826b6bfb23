"""One history-export run in a process of its own, for the crash test of
test_history_export_e2e: the test kills it between its object writes and its commit."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import sys
from pathlib import Path

from auth import SecretBox
from billing import EgressPolicy
from controlplane.history_exports.exporter import HistoryExporter
from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.workflows.service import CellChannels


async def main(url: str, secrets_key: Path, now: dt.datetime) -> None:
    engine = create_engine(url)
    box = SecretBox.from_file(secrets_key, create=False)
    channels = CellChannels(box)
    # The sink's name reaches the loopback SeaweedFS only through this resolver.
    egress = EgressPolicy(
        allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),),
        resolver=lambda host, port: ["127.0.0.1"],
    )
    try:
        exporter = HistoryExporter(box, channels, egress=egress, clock=lambda: now)
        await exporter.export_once(create_sessionmaker(engine))
    finally:
        await channels.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), dt.datetime.fromisoformat(sys.argv[3])))
