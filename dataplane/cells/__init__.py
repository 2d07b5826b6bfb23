"""Cells: isolated Temporal clusters, one per account, run by a provider and kept running by a
watcher. A provider allocates each cell's endpoint (``provision``) and runs the cell there."""

from dataplane.cells._external import PROVISION_REFUSAL, ExternalCellProvider
from dataplane.cells._factory import create_provider
from dataplane.cells._local import (
    DEFAULT_STOP_TIMEOUT,
    LocalCellPorts,
    LocalCellProvider,
    dev_server_command,
    temporal_binary,
)
from dataplane.cells._probe import DEFAULT_PROBE_TIMEOUT, ProbeResult, probe
from dataplane.cells._provider import (
    CellEndpoint,
    CellError,
    CellProvider,
    CellProviderKind,
    CellStatus,
    ProvisioningRefused,
)
from dataplane.cells._tls import CellTls, grpc_channel, temporal_tls_config
from dataplane.cells._watch import CellHealthState, CellReport, CellWatcher, RestartPolicy

__all__ = [
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "PROVISION_REFUSAL",
    "CellEndpoint",
    "CellError",
    "CellHealthState",
    "CellProvider",
    "CellProviderKind",
    "CellReport",
    "CellStatus",
    "CellTls",
    "CellWatcher",
    "ExternalCellProvider",
    "LocalCellPorts",
    "LocalCellProvider",
    "ProbeResult",
    "ProvisioningRefused",
    "RestartPolicy",
    "create_provider",
    "dev_server_command",
    "grpc_channel",
    "probe",
    "temporal_binary",
    "temporal_tls_config",
]
