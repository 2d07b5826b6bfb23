"""``stratus export``: today's state of an account as an ``apply`` file (round trip: applying
it plans no changes). Secrets are never written: a sink's secret is ``${ENV_VAR}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane.declarative.plan import _is_not_found
from controlplane.declarative.spec import API_VERSION, KIND

if TYPE_CHECKING:
    from controlplane.client import StratusClient

USAGE_SECRET_ENV = "STRATUS_USAGE_EXPORT_SECRET_ACCESS_KEY"  # noqa: S105 - a variable name
AUDIT_SECRET_ENV = "STRATUS_AUDIT_LOG_SECRET_ACCESS_KEY"  # noqa: S105 - a variable name


def history_secret_env(namespace: str) -> str:
    return "STRATUS_HISTORY_EXPORT_SECRET_" + namespace.upper().replace("-", "_")


def _sink(sink: Any, secret_env: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bucket": sink.bucket,
        "prefix": sink.prefix,
        "region": sink.region,
    }
    if sink.endpoint_url:
        body["endpoint_url"] = sink.endpoint_url
    body["access_key_id"] = sink.access_key_id
    body["secret_access_key"] = "${" + secret_env + "}"
    return body


def _optional(get: Any) -> Any:
    try:
        return get()
    except Exception as error:
        if _is_not_found(error):
            return None
        raise


def export(client: StratusClient) -> dict[str, Any]:
    """The caller's account as a spec document (what the credential may read)."""
    namespaces = [n for n in client.iter_namespaces() if n.state != "DELETING"]
    names = {n.id: n.name for n in namespaces}

    def permissions(grants: list[Any]) -> dict[str, str]:
        return {names[g.namespace_id]: str(g.permission) for g in grants if g.namespace_id in names}

    document: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND, "namespaces": []}
    for namespace in sorted(namespaces, key=lambda n: n.name):
        item: dict[str, Any] = {
            "name": namespace.name,
            "retention_days": namespace.retention_days,
            "auth_method": namespace.auth_method.value,
            "ca_certificates": namespace.accepted_client_ca,
        }
        if namespace.certificate_filters:
            item["certificate_filters"] = namespace.certificate_filters
        item["delete_protection"] = namespace.lifecycle.enable_delete_protection
        item["tags"] = dict(namespace.tags)
        item["search_attributes"] = {k: str(v) for k, v in namespace.search_attributes.items()}
        if namespace.codec_server is not None:
            item["codec_server"] = namespace.codec_server.model_dump()
        item["limits"] = {
            "requests_per_second": namespace.requests_per_second,
            "actions_per_second": namespace.actions_per_second,
        }
        history = _optional(lambda n=namespace: client.get_history_export_sink(n.id))
        if history is not None:
            item["history_export_sink"] = _sink(history, history_secret_env(namespace.name))
        document["namespaces"].append(item)
    document["users"] = [
        {
            "email": user.email,
            "account_role": user.account_role.value,
            "namespace_permissions": permissions(user.namespace_permissions),
        }
        for user in sorted(client.iter_users(), key=lambda u: u.email)
    ]
    groups = _optional(lambda: list(client.iter_groups()))
    if groups is not None:
        document["groups"] = [
            {
                "name": group.name,
                "description": group.description,
                "account_role": None if group.account_role is None else group.account_role.value,
                "members": sorted(m.email for m in client.iter_group_members(group.id)),
                "namespace_permissions": {
                    names[g.namespace_id]: g.permission.value
                    for g in group.namespace_permissions
                    if g.namespace_id in names
                },
            }
            for group in sorted(groups, key=lambda g: g.name)
        ]
    service_accounts: list[dict[str, Any]] = []
    for sa in sorted(client.iter_service_accounts(), key=lambda s: s.name):
        item = {"name": sa.name, "description": sa.description}
        if sa.namespace_scope is not None:
            item["namespace_scope"] = {
                "namespace": names.get(sa.namespace_scope.namespace_id, "?"),
                "permission": sa.namespace_scope.permission.value,
            }
        else:
            item["account_role"] = str(sa.account_role)
            item["namespace_permissions"] = permissions(sa.namespace_permissions)
        service_accounts.append(item)
    document["service_accounts"] = service_accounts
    sinks: dict[str, Any] = {}
    usage = _optional(client.get_export_sink)
    if usage is not None:
        sinks["usage_export"] = _sink(usage, USAGE_SECRET_ENV)
    audit = _optional(client.get_audit_log_sink)
    if audit is not None:
        sinks["audit_log"] = _sink(audit, AUDIT_SECRET_ENV)
    document["sinks"] = sinks
    return document
