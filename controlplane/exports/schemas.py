from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class S3TargetSet(BaseModel):
    """Where a sink writes: the fields every sink (usage export, audit log, history export)
    is set with."""

    bucket: str = Field(description="S3 bucket name (3-63 characters)")
    prefix: str = Field(default="", description="Key prefix, e.g. 'stratus/exports'")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(
        default=None, description="For S3-compatible stores other than AWS (http or https)"
    )
    access_key_id: str
    secret_access_key: str = Field(description="Stored encrypted; never returned")


class S3TargetOut(BaseModel):
    """A sink's target as every sink shows it (never its secret), and its last error."""

    bucket: str
    prefix: str
    region: str
    endpoint_url: str | None
    access_key_id: str
    export_from: dt.datetime
    last_error: str | None = Field(description="Why the last export attempt failed, if it did")
    last_error_at: dt.datetime | None


class ExportSinkSet(S3TargetSet):
    export_from: dt.date | None = Field(
        default=None, description="First UTC day whose usage is exported (default: today)"
    )


class ExportSinkOut(S3TargetOut):
    account_id: str
    usage_exported_through: dt.datetime | None = Field(
        description="Start of the last UTC hour whose usage is in the bucket"
    )
