"""Nested namespaces and task tokens are found in every request type that can carry them."""

from __future__ import annotations

import pytest
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from dataplane.gateway._nested import (
    MalformedTaskToken,
    may_nest,
    nested_references,
    task_token_namespace_id,
)

NAMESPACE_ID = "0b7c4f4e-3f0a-4a6e-9a59-2d1e7a3f9c10"


def _token(namespace_id: str = NAMESPACE_ID) -> bytes:
    """A task token as the server encodes it: field 1 namespace id, 2 workflow id, 3 run id,
    plus a varint field, as real tokens carry (schedule ids, attempts)."""

    def string_field(number: int, value: str) -> bytes:
        data = value.encode()
        return bytes([number << 3 | 2, len(data)]) + data

    return (
        string_field(1, namespace_id)
        + string_field(2, "wf")
        + string_field(3, "run")
        + bytes([5 << 3 | 0, 0x96, 0x01])
    )


def test_task_token_namespace_id_is_field_one() -> None:
    """The namespace id is read from field 1 of the token's wire format."""
    assert task_token_namespace_id(_token()) == NAMESPACE_ID


def test_task_token_field_order_does_not_matter() -> None:
    """Fields before the namespace id are skipped correctly."""
    token = bytes([5 << 3 | 0, 0x01]) + bytes([2 << 3 | 2, 2]) + b"wf" + _token()
    assert task_token_namespace_id(token) == NAMESPACE_ID


@pytest.mark.parametrize(
    "token",
    [b"", b"\x0a", b"\x0a\x10abc", b"\x12\x02wf", b"\xff\xff\xff", b"\x0f"],
    ids=["empty", "tag-only", "truncated", "no-namespace", "bad-varint", "bad-wire-type"],
)
def test_malformed_task_tokens_are_refused(token: bytes) -> None:
    """Anything that does not carry a readable namespace id is malformed."""
    with pytest.raises(MalformedTaskToken):
        task_token_namespace_id(token)


def test_workflow_task_commands_are_searched() -> None:
    """Namespaces in child-workflow, signal-external and cancel-external commands are found."""
    request = rr.RespondWorkflowTaskCompletedRequest(namespace="a.acct1", task_token=_token())
    request.commands.add().start_child_workflow_execution_command_attributes.namespace = "b.x"
    request.commands.add().signal_external_workflow_execution_command_attributes.namespace = "c.x"
    cancel = request.commands.add().request_cancel_external_workflow_execution_command_attributes
    cancel.namespace = "d.x"
    found = nested_references(request)
    assert found.namespaces == ("b.x", "c.x", "d.x")
    assert found.task_token_namespace_ids == (NAMESPACE_ID,)


def test_multi_operation_inner_requests_are_searched() -> None:
    request = rr.ExecuteMultiOperationRequest(namespace="a.acct1")
    request.operations.add().start_workflow.namespace = "b.x"
    request.operations.add().update_workflow.namespace = "c.x"
    assert nested_references(request).namespaces == ("b.x", "c.x")


def test_top_level_namespace_is_not_reported() -> None:
    """Only nested references are returned; the outer namespace is checked by the caller."""
    request = rr.RespondActivityTaskCompletedRequest(namespace="a.acct1", task_token=_token())
    found = nested_references(request)
    assert found.namespaces == ()
    assert found.task_token_namespace_ids == (NAMESPACE_ID,)


def test_every_request_with_a_task_token_or_second_namespace_is_covered() -> None:
    """Computed from the descriptors: every request type with a task_token field or a
    namespace field below the top level is searched; the hot path skips the rest."""
    expected = {
        "RespondWorkflowTaskCompletedRequest",
        "RespondWorkflowTaskFailedRequest",
        "RecordActivityTaskHeartbeatRequest",
        "RespondActivityTaskCompletedRequest",
        "RespondActivityTaskFailedRequest",
        "RespondActivityTaskCanceledRequest",
        "RespondQueryTaskCompletedRequest",
        "RespondNexusTaskCompletedRequest",
        "RespondNexusTaskFailedRequest",
        "ExecuteMultiOperationRequest",
        "StartBatchOperationRequest",
    }
    nesting = {
        name
        for name in rr.DESCRIPTOR.message_types_by_name
        if name.endswith("Request") and may_nest(getattr(rr, name).DESCRIPTOR)
    }
    assert expected <= nesting
    assert not may_nest(rr.PollWorkflowTaskQueueRequest.DESCRIPTOR)
    assert not may_nest(rr.DescribeNamespaceRequest.DESCRIPTOR)
