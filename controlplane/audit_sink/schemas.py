from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class AuditLogSinkSet(BaseModel):
    bucket: str = Field(description="S3 bucket name (3-63 characters)")
    prefix: str = Field(default="", description="Key prefix, e.g. 'stratus/audit'")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(
        default=None, description="For S3-compatible stores other than AWS (http or https)"
    )
    access_key_id: str
    secret_access_key: str = Field(description="Stored encrypted; never returned")
    export_from: dt.datetime | None = Field(
        default=None,
        description="First UTC hour whose events are exported (default: the current hour); "
        "given on a replaced sink, the hours from there are written again",
    )


class AuditLogSinkOut(BaseModel):
    account_id: str
    bucket: str
    prefix: str
    region: str
    endpoint_url: str | None
    access_key_id: str
    export_from: dt.datetime
    exported_through: dt.datetime | None = Field(
        description="Start of the last UTC hour whose events are in the bucket"
    )
    last_success_at: dt.datetime | None = Field(description="When an export last succeeded")
    last_error: str | None = Field(description="Why the last export attempt failed, if it did")
    last_error_at: dt.datetime | None
    lag_seconds: int | None = Field(
        description="How far behind the sink is: seconds from the end of the last hour "
        "exported (or the start of export_from) to now"
    )
