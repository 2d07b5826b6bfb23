"""The ``external`` provider runs nothing: a worker whose cells are all registered builds it from
``STRATUS_CELL_PROVIDER=external`` and is refused (clearly) when asked to provision a cell."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplane.cells import (
    CellEndpoint,
    CellError,
    CellProviderKind,
    CellStatus,
    ExternalCellProvider,
    ProvisioningRefused,
    create_provider,
)


async def test_the_factory_builds_it_and_it_runs_nothing(tmp_path: Path) -> None:
    provider = create_provider(CellProviderKind.EXTERNAL, tmp_path / "cells")
    assert isinstance(provider, ExternalCellProvider)
    assert provider.kind == CellProviderKind.EXTERNAL
    with pytest.raises(ProvisioningRefused) as refused:
        await provider.provision("cell-acct1")
    assert isinstance(refused.value, CellError)
    assert str(refused.value) == (
        "cannot provision cell cell-acct1: external cells are registered with "
        "`stratus cell register`, not provisioned (STRATUS_CELL_PROVIDER=external runs no "
        "cell of its own)"
    )
    registered = CellEndpoint("shared-one", "external", "10.0.0.5:7233", "")
    await provider.start(registered)  # the operator runs it: nothing to start
    await provider.stop("shared-one")
    assert await provider.status("shared-one") == CellStatus.STOPPED
    assert provider.known_cells() == []
    assert not (tmp_path / "cells").exists()
