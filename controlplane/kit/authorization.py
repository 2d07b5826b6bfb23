"""The services' policy check: ask ``auth.authorize`` (the one function that decides), refuse
with ``403 .../forbidden``. Routes declare theirs with ``controlplane.api.deps.requires``, which
calls this."""

from __future__ import annotations

from auth import Action, Principal, Resource, authorize
from controlplane.kit.errors import Forbidden


def require(
    principal: Principal,
    action: Action,
    resource: Resource | None = None,
    *,
    refusal: str | None = None,
) -> None:
    """Raise :class:`Forbidden` (``refusal``, or one naming the action) unless the policy
    allows ``action`` on ``resource`` (None: whether it may be allowed at all)."""
    if not authorize(principal, action, resource):
        raise Forbidden(refusal or f"this credential may not perform {action.value}")
