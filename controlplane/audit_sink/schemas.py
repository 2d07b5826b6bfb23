from __future__ import annotations

import datetime as dt

from pydantic import Field

from controlplane.exports.schemas import S3TargetOut, S3TargetSet


class AuditLogSinkSet(S3TargetSet):
    export_from: dt.datetime | None = Field(
        default=None,
        description="First UTC hour whose events are exported (default: the current hour); "
        "given on a replaced sink, the hours from there are written again",
    )


class AuditLogSinkOut(S3TargetOut):
    account_id: str
    exported_through: dt.datetime | None = Field(
        description="Start of the last UTC hour whose events are in the bucket"
    )
    last_success_at: dt.datetime | None = Field(description="When an export last succeeded")
    lag_seconds: int | None = Field(
        description="How far behind the sink is: seconds from the end of the last hour "
        "exported (or the start of export_from) to now"
    )
