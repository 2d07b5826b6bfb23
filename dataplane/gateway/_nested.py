"""Every namespace a request carries, not only its top-level one.

Temporal requests can name a second namespace deep inside them: workflow commands
(``StartChildWorkflowExecution``, ``SignalExternalWorkflowExecution``, ...), the inner requests
of ``ExecuteMultiOperation``, batch operations, and task tokens (the server's own protobuf whose
field 1 is the namespace *id*). Each was a cross-namespace CVE in Temporal. Which fields can
hold one is computed from the protobuf descriptors once per request type, so new fields in a
newer ``temporalio`` are covered without a hand-kept list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_NAMESPACE_FIELD = "namespace"
_TASK_TOKEN_FIELD = "task_token"  # noqa: S105 - a field name, not a secret


@dataclass(frozen=True, slots=True)
class NestedReferences:
    """Namespace names found below the top level, and the namespace ids in task tokens."""

    namespaces: tuple[str, ...]
    task_token_namespace_ids: tuple[str, ...]


_NONE = NestedReferences((), ())


def _is_namespace(field: FieldDescriptor) -> bool:
    return field.name == _NAMESPACE_FIELD and field.type == FieldDescriptor.TYPE_STRING


def _is_task_token(field: FieldDescriptor) -> bool:
    return field.name == _TASK_TOKEN_FIELD and field.type == FieldDescriptor.TYPE_BYTES


@cache
def _reaches(descriptor: Descriptor) -> bool:
    """Whether a message of this type can contain a namespace or task-token field."""
    return _search(descriptor, set())


def _search(descriptor: Descriptor, visiting: set[str]) -> bool:
    if descriptor.full_name in visiting:
        return False  # recursive types (e.g. Failure.cause) are covered by the first visit
    visiting.add(descriptor.full_name)
    for field in descriptor.fields:
        if _is_namespace(field) or _is_task_token(field):
            return True
        child = field.message_type
        if child is not None and _search(child, visiting):
            return True
    return False


@cache
def _paths(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    """Message fields of ``descriptor`` worth descending into, and the fields to read."""
    return tuple(
        field
        for field in descriptor.fields
        if _is_namespace(field)
        or _is_task_token(field)
        or (field.message_type is not None and _reaches(field.message_type))
    )


def may_nest(descriptor: Descriptor) -> bool:
    """Whether a request of this type can carry anything beyond its top-level namespace."""
    return any(
        _is_task_token(field) or (field.message_type is not None and _reaches(field.message_type))
        for field in descriptor.fields
    )


def _walk(message: Message, top: bool) -> Iterator[tuple[str, str]]:
    for field in _paths(message.DESCRIPTOR):
        if _is_namespace(field):
            if not top:
                value = getattr(message, field.name)
                if value:
                    yield "namespace", value
            continue
        if _is_task_token(field):
            value = getattr(message, field.name)
            if value:
                yield "task_token", task_token_namespace_id(value)
            continue
        if field.is_repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                children = list(getattr(message, field.name).values())
            else:
                children = list(getattr(message, field.name))
            for child in children:
                if isinstance(child, Message):
                    yield from _walk(child, False)
        elif message.HasField(field.name):
            yield from _walk(getattr(message, field.name), False)


def nested_references(request: Message) -> NestedReferences:
    """Every nested namespace and task-token namespace id in ``request`` (top level excluded)."""
    if not may_nest(cast(Descriptor, request.DESCRIPTOR)):
        return _NONE
    namespaces: list[str] = []
    token_ids: list[str] = []
    for kind, value in _walk(request, True):
        (namespaces if kind == "namespace" else token_ids).append(value)
    return NestedReferences(tuple(namespaces), tuple(token_ids))


class MalformedTaskToken(ValueError):
    """The bytes are not a Temporal task token."""


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise MalformedTaskToken("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def task_token_namespace_id(token: bytes) -> str:
    """Field 1 (``namespace_id``, a string) of the server's task-token protobuf.

    Decoded from the wire format: the message type is the server's own and is not shipped
    in ``temporalio``. A token without the field, or that is not protobuf, is malformed.
    """
    position = 0
    while position < len(token):
        key, position = _varint(token, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, position = _varint(token, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == 2:
            length, position = _varint(token, position)
            if position + length > len(token):
                raise MalformedTaskToken("truncated field")
            if number == 1:
                try:
                    return token[position : position + length].decode()
                except UnicodeDecodeError:
                    raise MalformedTaskToken("namespace id is not text") from None
            position += length
        else:
            raise MalformedTaskToken(f"unsupported wire type {wire_type}")
        if position > len(token):
            raise MalformedTaskToken("truncated field")
    raise MalformedTaskToken("no namespace id")
