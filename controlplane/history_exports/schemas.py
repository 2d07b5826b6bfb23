from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from controlplane.exports.schemas import ExportSinkSet, S3TargetOut


class HistoryExportSinkSet(ExportSinkSet):
    """A namespace's history export sink: the same S3 settings as the account's usage sink."""

    export_from: dt.date | None = Field(
        default=None,
        description="First UTC day whose closed workflow runs are exported (default: today)",
    )


class HistoryExportSinkOut(S3TargetOut):
    namespace_id: str
    exported_until: dt.datetime | None = Field(
        description="Every run that closed before this time is in the bucket"
    )
    exported_count: int = Field(description="Workflow runs exported so far")
    last_exported_at: dt.datetime | None = Field(description="When the export last moved on")


class HistoryExportSinkValidation(BaseModel):
    ok: bool = Field(description="Whether the probe object was written and deleted")
    probe_key: str = Field(description="The key of the probe object")
    error: str | None = Field(description="What the S3 endpoint answered, when it failed")
