"""The one settings object (environment prefix ``STRATUS_``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

SYSTEM_TASK_QUEUE = "stratus-control-plane"
SYSTEM_NAMESPACE = "default"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STRATUS_", extra="ignore")

    data_dir: Path = Path(".stratus")
    database_url: str | None = None
    host: str = "127.0.0.1"
    api_port: int = 8080
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 7233
    # Address of the control plane's own Temporal cluster; set by the supervisor.
    system_cell_address: str = "127.0.0.1:7243"
    cell_provider: Literal["local"] = "local"
    # How operations' workflow starts are retried when the system cell was unreachable.
    reconcile_interval_seconds: float = 10.0
    otel_exporter: Literal["none", "console"] = "none"
    log_level: str = "INFO"

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_data_dir / 'stratus.db'}"

    @property
    def cells_dir(self) -> Path:
        return self.resolved_data_dir / "cells"

    @property
    def pki_dir(self) -> Path:
        return self.resolved_data_dir / "pki"

    @property
    def operator_key_path(self) -> Path:
        return self.resolved_data_dir / "operator.key"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"
