"""The objects of a history export: one per closed workflow run, at a key that depends only on
the run, holding Temporal's ``temporal.api.history.v1.History`` protobuf; and the probe that
validates a sink."""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from billing import EgressPolicy, S3ExportTarget, failure_category, s3_client

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

CONTENT_TYPE = "application/x-protobuf; messageType=temporal.api.history.v1.History"
SUFFIX = ".history.binpb"
# An S3 error code is a word (NoSuchBucket, InvalidAccessKeyId, SignatureDoesNotMatch): shown
# as is. Anything else the endpoint says is not (it could be any service's answer).
_ERROR_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9.]{0,63}$")


def _segment(value: str) -> str:
    """An id as one URL-safe key segment: base64url without padding (ids may hold ``/``,
    spaces or anything else Temporal allows)."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _prefixed(sink: S3ExportTarget, key: str) -> str:
    prefix = sink.prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def history_object_key(
    sink: S3ExportTarget, namespace_id: str, close_time: dt.datetime, workflow_id: str, run_id: str
) -> str:
    """``{prefix}/{namespace}/{YYYY}/{MM}/{DD}/{HH}/{workflow_id}/{run_id}.history.binpb``: the
    UTC hour the run closed in, the workflow and run ids base64url-encoded."""
    hour = close_time.astimezone(dt.UTC)
    return _prefixed(
        sink,
        f"{namespace_id}/{hour:%Y/%m/%d/%H}/{_segment(workflow_id)}/{_segment(run_id)}{SUFFIX}",
    )


def write_history(s3: S3Client, sink: S3ExportTarget, key: str, history: bytes) -> None:
    """Write one run's history; writing it again puts the same bytes at the same key."""
    s3.put_object(Bucket=sink.bucket, Key=key, Body=history, ContentType=CONTENT_TYPE)


@dataclass(frozen=True)
class Probe:
    ok: bool
    key: str
    error: str | None


def describe_failure(error: BaseException) -> str:
    """What a tenant sees of a failed S3 call: the category (``billing.failure_category``) and
    S3's error code when it is one."""
    from botocore.exceptions import ClientError

    category = failure_category(error)
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if _ERROR_CODE.match(code):
            return f"{category}: {code}"
    return category


def probe(sink: S3ExportTarget, namespace_id: str, *, egress: EgressPolicy) -> Probe:
    """Write a small object under the sink's prefix and delete it: the sink is usable when both
    succeed. Blocking (boto3): run it in a thread."""
    key = _prefixed(sink, f"{namespace_id}/.stratus-probe/{uuid.uuid4().hex}")
    try:
        s3 = s3_client(sink, egress=egress, max_attempts=1)
        s3.put_object(Bucket=sink.bucket, Key=key, Body=b"stratus export sink probe")
        s3.delete_object(Bucket=sink.bucket, Key=key)
    except Exception as error:
        return Probe(ok=False, key=key, error=describe_failure(error))
    return Probe(ok=True, key=key, error=None)
