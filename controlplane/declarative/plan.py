"""Plan and apply an :class:`AccountSpec` through the admin API, and export an account as one.

A plan reads today's state (every page of every list the file manages), diffs it per object
and field, and holds the writes as steps in dependency order: namespaces, then users, groups
and service accounts, then their grants and memberships, then sinks; deletes after, in
reverse. Every update carries the ``resource_version`` read while planning, so an edit made
between plan and apply is the API's 409 and apply stops there, naming the object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from auth import AccountRole, NamespacePermission
from controlplane.declarative.spec import (
    AccountSpec,
    GroupSpec,
    NamespaceSpec,
    ServiceAccountSpec,
    Sink,
    SpecError,
    UserSpec,
    certificate_bodies,
)

if TYPE_CHECKING:
    from controlplane.client import StratusClient
    from controlplane.groups.schemas import GroupOut
    from controlplane.namespaces.schemas import NamespaceOut
    from controlplane.service_accounts.schemas import ServiceAccountOut
    from controlplane.users.schemas import UserOut

# Step phases: writes run in this order whatever order the file lists objects in.
_NAMESPACES, _WAIT, _HISTORY_SINKS, _USERS, _GROUPS, _SERVICE_ACCOUNTS = 1, 2, 3, 4, 5, 6
_GRANTS, _SINKS = 7, 8
_DELETE_SINKS, _DELETE_SERVICE_ACCOUNTS, _DELETE_GROUPS, _DELETE_USERS = 11, 12, 13, 14
_DELETE_NAMESPACES = 15
_GONE_STATES = frozenset({"DELETING"})
_RESOURCE_VERSION_MISMATCH = "resource-version-mismatch"


class ApplyConflict(Exception):
    """An object changed between plan and apply (the API's 409): apply stopped there."""

    def __init__(self, change: Change, detail: str) -> None:
        self.change = change
        super().__init__(
            f"{change.kind} {change.name} changed since the plan was read ({detail}); "
            "apply stopped before writing it: run apply again to plan from today's state"
        )


class ApplyFailed(Exception):
    """The API refused a write, or an operation it started failed: apply stopped there
    (writes before it stay). ``change``: the object, when the failure is one write's."""

    def __init__(self, change: Change | None, error: Exception) -> None:
        self.change = change
        self.error = error
        where = f"{change.action} {change.kind} {change.name}: " if change else ""
        super().__init__(f"{where}{error}")


class OperationFailed(Exception):
    """An async operation apply waited for ended FAILED (or did not end in time)."""


@dataclass
class _Run:
    """What the steps share while applying: ids of objects (created ones included)."""

    client: StratusClient
    account_id: str
    wait: bool
    user_ids: dict[str, str]
    group_ids: dict[str, str]
    service_account_ids: dict[str, str]
    operations: list[str] = field(default_factory=list)

    def namespace_id(self, name: str) -> str:
        return f"{name}.{self.account_id}"


@dataclass
class Step:
    phase: int
    run: Callable[[_Run], object]


@dataclass
class Change:
    """One object's create, update or delete, with its changed fields."""

    action: str  # create | update | delete
    kind: str
    name: str
    fields: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def line(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        head = " ".join(part for part in (sign, self.action, self.kind, self.name) if part)
        return "\n".join([head, *(f"    {text}" for text in self.fields)])


@dataclass
class Plan:
    """What apply would write. ``notices``: differences apply does not write (limits only the
    operator sets, namespaces delete protection keeps)."""

    account_id: str
    changes: list[Change]
    notices: list[str]
    _run: _Run

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def text(self) -> str:
        lines = [change.line() for change in self.changes]
        lines += [f"! {notice}" for notice in self.notices]
        counts = self.counts()
        if self.empty:
            lines.append("No changes: the account matches the file.")
        else:
            lines.append(
                f"Plan: {counts['create']} to create, {counts['update']} to update, "
                f"{counts['delete']} to delete."
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "changes": [
                {"action": c.action, "kind": c.kind, "name": c.name, "fields": c.fields}
                for c in self.changes
            ],
            "notices": self.notices,
            **self.counts(),
        }


@dataclass
class ApplyResult:
    plan: Plan
    applied: list[Change]
    operations: list[str]


def _is_not_found(error: Exception) -> bool:
    from controlplane.client import StratusAPIError

    return isinstance(error, StratusAPIError) and error.status == 404


def _change(value: object) -> str:
    if value is None or value == {} or value == []:
        return "(none)"
    if isinstance(value, dict):  # keys sorted: the API's order is not the file's
        return str(dict(sorted(value.items())))
    return str(value)


def _field(name: str, old: object, new: object) -> str:
    return f"{name}: {_change(old)} -> {_change(new)}"


def _filters(filters: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in f.items() if v not in (None, "")} for f in filters]


def _codec(namespace: NamespaceOut) -> dict[str, Any] | None:
    return namespace.codec_server.model_dump() if namespace.codec_server else None


def _permission_changes(
    where: str,
    desired: dict[str, NamespacePermission] | None,
    current: dict[str, str],
    known: set[str],
) -> dict[str, NamespacePermission | None]:
    """namespace name -> new permission (None removes) for a managed permission map."""
    if desired is None:
        return {}
    for name in desired:
        if name not in known:
            raise SpecError(
                [
                    f"{where}.namespace_permissions.{name}: no such namespace in the "
                    "file or the account"
                ]
            )
    changes: dict[str, NamespacePermission | None] = {}
    for name, permission in desired.items():
        if current.get(name) != permission.value:
            changes[name] = permission
    for name in current:
        if name not in desired:
            changes[name] = None
    return changes


def _permission_fields(
    changes: dict[str, NamespacePermission | None], current: dict[str, str]
) -> list[str]:
    return [
        _field(f"namespace_permissions.{name}", current.get(name), None if p is None else p.value)
        for name, p in sorted(changes.items())
    ]


class _Planner:
    def __init__(
        self, client: StratusClient, spec: AccountSpec, *, prune: bool, wait: bool
    ) -> None:
        identity = client.current_identity()
        if identity.account_id is None:
            raise SpecError(["(file): apply works on an account: use a credential of one"])
        self.client = client
        self.spec = spec
        self.prune = prune
        self.identity = identity
        self.changes: list[Change] = []
        self.notices: list[str] = []
        self.run = _Run(client, identity.account_id, wait, {}, {}, {})
        self.namespaces = {
            n.name: n for n in client.iter_namespaces() if n.state not in _GONE_STATES
        }
        self.names_by_id = {n.id: n.name for n in self.namespaces.values()}
        self.known_namespaces = set(self.namespaces) | {n.name for n in spec.namespaces or []}
        self.users = {u.email.lower(): u for u in client.iter_users()}
        self.run.user_ids = {email: u.id for email, u in self.users.items()}

    def _permissions(self, grants: list[Any]) -> dict[str, str]:
        return {
            self.names_by_id[g.namespace_id]: str(g.permission)
            for g in grants
            if g.namespace_id in self.names_by_id
        }

    # Namespaces -------------------------------------------------------------------------
    def namespaces_plan(self) -> None:
        if self.spec.namespaces is None:
            return
        wanted = {n.name for n in self.spec.namespaces}
        started = False
        for index, desired in enumerate(self.spec.namespaces):
            current = self.namespaces.get(desired.name)
            if current is None:
                self._create_namespace(desired)
                started = True
            else:
                started |= self._update_namespace(index, desired, current)
            self._history_sink(index, desired, current)
        if started and self.run.wait:
            self.changes[-1].steps.append(Step(_WAIT, _wait_for_operations))
        if self.prune:
            for name, current in self.namespaces.items():
                if name in wanted:
                    continue
                if current.lifecycle.enable_delete_protection:
                    self.notices.append(
                        f"namespace {name} is not in the file but has delete protection: "
                        "not deleted (turn it off first)"
                    )
                    continue
                self.changes.append(
                    Change(
                        "delete",
                        "namespace",
                        name,
                        steps=[
                            Step(
                                _DELETE_NAMESPACES,
                                _delete_namespace(current.id, current.resource_version),
                            )
                        ],
                    )
                )

    def _create_namespace(self, desired: NamespaceSpec) -> None:
        from controlplane.namespaces.schemas import CodecServerSpec

        codec = (
            CodecServerSpec(**desired.codec_server.model_dump()) if desired.codec_server else None
        )
        fields = [
            f"retention_days: {desired.retention_days}",
            f"auth_method: {desired.auth_method.value}",
            f"ca_certificates: {len(certificate_bodies(desired.ca_certificates))} certificate(s)",
        ]
        if desired.tags:
            fields.append(f"tags: {desired.tags}")
        if desired.search_attributes:
            fields.append(f"search_attributes: {dict(desired.search_attributes)}")
        if desired.delete_protection:
            fields.append("delete_protection: True")

        def create(run: _Run) -> None:
            created = run.client.create_namespace(
                desired.name,
                desired.ca_certificates,
                retention_days=desired.retention_days,
                certificate_filters=[dict(f) for f in desired.certificate_filters],
                auth_method=desired.auth_method,
                delete_protection=desired.delete_protection,
                tags=desired.tags,
                search_attributes=dict(desired.search_attributes),
                codec_server=codec,
            )
            run.operations.append(created.async_operation.id)

        self.changes.append(
            Change("create", "namespace", desired.name, fields, [Step(_NAMESPACES, create)])
        )
        if desired.limits is not None:
            self.notices.append(
                f"namespace {desired.name}: limits {desired.limits.requests_per_second} rps / "
                f"{desired.limits.actions_per_second} aps are requested; only the operator "
                "sets them (stratus namespace set-limits)"
            )

    def _update_namespace(self, index: int, desired: NamespaceSpec, current: NamespaceOut) -> bool:
        from controlplane.namespaces.schemas import CodecServerSpec

        update: dict[str, Any] = {}
        fields: list[str] = []
        if desired.retention_days != current.retention_days:
            update["retention_days"] = desired.retention_days
            fields.append(_field("retention_days", current.retention_days, desired.retention_days))
        if desired.auth_method != current.auth_method:
            update["auth_method"] = desired.auth_method
            fields.append(
                _field("auth_method", current.auth_method.value, desired.auth_method.value)
            )
        if certificate_bodies(desired.ca_certificates) != certificate_bodies(
            current.accepted_client_ca
        ):
            update["accepted_client_ca"] = desired.ca_certificates
            fields.append("ca_certificates: changed")
        if _filters(desired.certificate_filters) != _filters(current.certificate_filters):
            update["certificate_filters"] = [dict(f) for f in desired.certificate_filters]
            fields.append(
                _field(
                    "certificate_filters", current.certificate_filters, desired.certificate_filters
                )
            )
        if desired.delete_protection != current.lifecycle.enable_delete_protection:
            update["delete_protection"] = desired.delete_protection
            fields.append(
                _field(
                    "delete_protection",
                    current.lifecycle.enable_delete_protection,
                    desired.delete_protection,
                )
            )
        if dict(desired.search_attributes) != dict(current.search_attributes):
            update["search_attributes"] = dict(desired.search_attributes)
            fields.append(
                _field(
                    "search_attributes",
                    dict(current.search_attributes),
                    dict(desired.search_attributes),
                )
            )
        wanted_codec = desired.codec_server.model_dump() if desired.codec_server else None
        if wanted_codec != _codec(current):
            if wanted_codec is None:
                update["remove_codec_server"] = True
            else:
                update["codec_server"] = CodecServerSpec(**wanted_codec)
            fields.append(_field("codec_server", _codec(current), wanted_codec))
        upsert = {k: v for k, v in desired.tags.items() if current.tags.get(k) != v}
        remove = [k for k in current.tags if k not in desired.tags]
        if upsert or remove:
            fields.append(_field("tags", current.tags, desired.tags))
        if desired.limits is not None and (
            desired.limits.requests_per_second != current.requests_per_second
            or desired.limits.actions_per_second != current.actions_per_second
        ):
            self.notices.append(
                f"namespace {desired.name}: limits {desired.limits.requests_per_second} rps / "
                f"{desired.limits.actions_per_second} aps requested, "
                f"{current.requests_per_second} / {current.actions_per_second} in force; only "
                "the operator sets them (stratus namespace set-limits)"
            )
        if not fields:
            return False
        if update and current.state != "ACTIVE":
            raise SpecError(
                [
                    f"namespaces[{index}]: namespace {desired.name} is {current.state}; "
                    "it can change once ACTIVE"
                ]
            )
        steps: list[Step] = []
        if update:
            version = current.resource_version

            def write(run: _Run) -> None:
                changed = run.client.update_namespace(
                    current.id, resource_version=version, **update
                )
                run.operations.append(changed.async_operation.id)

            steps.append(Step(_NAMESPACES, write))
        if upsert or remove:

            def tag(run: _Run) -> None:
                run.client.update_namespace_tags(current.id, upsert=upsert, remove=remove)

            steps.append(Step(_NAMESPACES, tag))
        self.changes.append(Change("update", "namespace", desired.name, fields, steps))
        return bool(update)

    def _history_sink(
        self, index: int, desired: NamespaceSpec, current: NamespaceOut | None
    ) -> None:
        existing = None
        if current is not None:
            try:
                existing = self.client.get_history_export_sink(current.id).model_dump()
            except Exception as error:
                if not _is_not_found(error):
                    raise
        self._sink(
            "history export sink",
            desired.name,
            f"namespaces[{index}].history_export_sink",
            desired.history_export_sink,
            existing,
            put=lambda run, body: run.client.set_history_export_sink(
                run.namespace_id(desired.name), _history_body(body)
            ),
            delete=lambda run: run.client.delete_history_export_sink(
                run.namespace_id(desired.name)
            ),
            phases=(_HISTORY_SINKS, _DELETE_SINKS),
        )

    # Sinks ------------------------------------------------------------------------------
    def _sink(
        self,
        kind: str,
        name: str,
        path: str,
        desired: Sink | None,
        existing: dict[str, Any] | None,
        *,
        put: Callable[[_Run, dict[str, Any]], object],
        delete: Callable[[_Run], None],
        phases: tuple[int, int],
    ) -> None:
        compared = ("bucket", "prefix", "region", "endpoint_url", "access_key_id")
        if desired is None:
            if existing is not None and self.prune:
                self.changes.append(Change("delete", kind, name, steps=[Step(phases[1], delete)]))
            return
        wanted = desired.model_dump()
        if existing is not None:
            wanted["access_key_id"] = desired.access_key_id_if_known()
            fields = [
                _field(k, existing[k], wanted[k]) for k in compared if existing[k] != wanted[k]
            ]
            if not fields:
                return
            action = "update"
        else:
            fields = [f"{k}: {wanted[k]}" for k in compared if wanted[k]]
            action = "create"
        body = desired.resolved(path)  # a missing variable fails here, before any write

        def write(run: _Run) -> None:
            put(run, body)

        self.changes.append(Change(action, kind, name, fields, [Step(phases[0], write)]))

    def sinks_plan(self) -> None:
        from controlplane.audit_sink.schemas import AuditLogSinkSet
        from controlplane.exports.schemas import ExportSinkSet

        if self.spec.sinks is None:
            return
        for kind, key, get, set_, delete, model in (
            ("usage export sink", "usage_export", self.client.get_export_sink,
             "set_export_sink", "delete_export_sink", ExportSinkSet),
            ("audit log sink", "audit_log", self.client.get_audit_log_sink,
             "set_audit_log_sink", "delete_audit_log_sink", AuditLogSinkSet),
        ):  # fmt: skip
            try:
                existing: dict[str, Any] | None = get().model_dump()
            except Exception as error:
                if not _is_not_found(error):
                    raise
                existing = None

            def put(run: _Run, body: dict[str, Any], set_: str = set_, model: Any = model) -> None:
                getattr(run.client, set_)(model(**body))

            def remove(run: _Run, delete: str = delete) -> None:
                getattr(run.client, delete)()

            self._sink(
                kind, "", f"sinks.{key}", getattr(self.spec.sinks, key), existing,
                put=put, delete=remove, phases=(_SINKS, _DELETE_SINKS),
            )  # fmt: skip

    # Users ------------------------------------------------------------------------------
    def users_plan(self) -> None:
        if self.spec.users is None:
            return
        for index, desired in enumerate(self.spec.users):
            self._user(index, desired, self.users.get(desired.email))
        if not self.prune:
            return
        wanted = {u.email for u in self.spec.users}
        owners_left = sum(1 for u in self.spec.users if u.account_role is AccountRole.OWNER)
        for email, current in self.users.items():
            if email in wanted:
                continue
            if self.identity.kind == "user" and current.id == self.identity.id:
                self.notices.append(f"user {email} is not in the file but is you: not deleted")
                continue
            if current.account_role == AccountRole.OWNER and owners_left == 0:
                self.notices.append(
                    f"user {email} is not in the file but is the last owner: not deleted"
                )
                owners_left += 1
                continue
            step = Step(_DELETE_USERS, _delete_user(current.id))
            self.changes.append(Change("delete", "user", email, steps=[step]))

    def _user(self, index: int, desired: UserSpec, current: UserOut | None) -> None:
        where = f"users[{index}]"
        current_permissions = self._permissions(current.namespace_permissions) if current else {}
        grants = _permission_changes(
            where, desired.namespace_permissions, current_permissions, self.known_namespaces
        )
        fields: list[str] = []
        steps: list[Step] = []
        email = desired.email
        if current is None:
            fields.append(f"account_role: {desired.account_role.value}")

            def invite(run: _Run) -> None:
                run.user_ids[email] = run.client.invite_user(email, desired.account_role.value).id

            steps.append(Step(_USERS, invite))
        elif current.account_role != desired.account_role:
            fields.append(
                _field("account_role", current.account_role.value, desired.account_role.value)
            )
            version = current.resource_version

            def role(run: _Run) -> None:
                run.client.update_user(
                    current.id, resource_version=version, account_role=desired.account_role.value
                )

            steps.append(Step(_USERS, role))
        fields += _permission_fields(grants, current_permissions)
        for name, permission in grants.items():
            steps.append(Step(_GRANTS, _user_grant(email, name, permission)))
        if steps:
            action = "create" if current is None else "update"
            self.changes.append(Change(action, "user", email, fields, steps))

    # Groups -----------------------------------------------------------------------------
    def groups_plan(self) -> None:
        if self.spec.groups is None:
            return
        try:
            groups = {g.name: g for g in self.client.iter_groups()}
        except Exception as error:
            if _is_not_found(error):
                raise SpecError(
                    ["groups: this Stratus API has no groups (/api/v1/groups)"]
                ) from None
            raise
        self.run.group_ids = {name: g.id for name, g in groups.items()}
        wanted_users = {u.email for u in self.spec.users or []} | set(self.users)
        for index, desired in enumerate(self.spec.groups):
            self._group(index, desired, groups.get(desired.name), wanted_users)
        if self.prune:
            wanted = {g.name for g in self.spec.groups}
            for name, current in groups.items():
                if name not in wanted:
                    step = Step(_DELETE_GROUPS, _delete_group(current.id, current.resource_version))
                    self.changes.append(Change("delete", "group", name, steps=[step]))

    def _group(
        self, index: int, desired: GroupSpec, current: GroupOut | None, users: set[str]
    ) -> None:
        where = f"groups[{index}]"
        for position, email in enumerate(desired.members or []):
            if email not in users:
                raise SpecError(
                    [f"{where}.members[{position}]: {email} is no user of the file or the account"]
                )
        current_permissions: dict[str, str] = {}
        members: set[str] = set()
        if current is not None:
            current_permissions = {
                self.names_by_id[g.namespace_id]: g.permission.value
                for g in current.namespace_permissions
                if g.namespace_id in self.names_by_id
            }
            if desired.members is not None:
                members = {m.email.lower() for m in self.client.iter_group_members(current.id)}
        grants = _permission_changes(
            where, desired.namespace_permissions, current_permissions, self.known_namespaces
        )
        name = desired.name
        fields: list[str] = []
        steps: list[Step] = []
        role = None if desired.account_role is None else desired.account_role.value
        if current is None:
            fields.append(f"account_role: {_change(role)}")

            def create(run: _Run) -> None:
                created = run.client.create_group(
                    name, description=desired.description, account_role=role
                )
                run.group_ids[name] = created.id

            steps.append(Step(_GROUPS, create))
        else:
            update: dict[str, Any] = {}
            if current.description != desired.description:
                update["description"] = desired.description
                fields.append(_field("description", current.description, desired.description))
            current_role = None if current.account_role is None else current.account_role.value
            if current_role != role:
                update["account_role"] = role
                fields.append(_field("account_role", current_role, role))
            if update:
                steps.append(
                    Step(_GROUPS, _update_group(current.id, current.resource_version, update))
                )
        if desired.members is not None:
            add = sorted(set(desired.members) - members)
            remove = sorted(members - set(desired.members))
            if add or remove:
                fields.append(_field("members", sorted(members), sorted(desired.members)))

                def membership(run: _Run) -> None:
                    run.client.update_group_members(
                        run.group_ids[name],
                        add=[run.user_ids[e] for e in add],
                        remove=[run.user_ids[e] for e in remove],
                    )

                steps.append(Step(_GRANTS, membership))
        fields += _permission_fields(grants, current_permissions)
        for namespace, permission in grants.items():
            steps.append(Step(_GRANTS, _group_grant(name, namespace, permission)))
        if steps:
            self.changes.append(
                Change("create" if current is None else "update", "group", name, fields, steps)
            )

    # Service accounts -------------------------------------------------------------------
    def service_accounts_plan(self) -> None:
        if self.spec.service_accounts is None:
            return
        existing = {sa.name: sa for sa in self.client.iter_service_accounts()}
        self.run.service_account_ids = {name: sa.id for name, sa in existing.items()}
        for index, desired in enumerate(self.spec.service_accounts):
            self._service_account(index, desired, existing.get(desired.name))
        if self.prune:
            wanted = {sa.name for sa in self.spec.service_accounts}
            for name, current in existing.items():
                if name in wanted:
                    continue
                if self.identity.kind == "service_account" and current.id == self.identity.id:
                    self.notices.append(
                        f"service account {name} is not in the file but is you: not deleted"
                    )
                    continue
                step = Step(_DELETE_SERVICE_ACCOUNTS, _delete_service_account(current.id))
                self.changes.append(Change("delete", "service account", name, steps=[step]))

    def _service_account(
        self, index: int, desired: ServiceAccountSpec, current: ServiceAccountOut | None
    ) -> None:
        where = f"service_accounts[{index}]"
        scope = desired.namespace_scope
        if scope is not None and scope.namespace not in self.known_namespaces:
            raise SpecError(
                [f"{where}.namespace_scope.namespace: no such namespace in the file or the account"]
            )
        current_permissions = self._permissions(current.namespace_permissions) if current else {}
        grants = _permission_changes(
            where, desired.namespace_permissions, current_permissions, self.known_namespaces
        )
        name = desired.name
        role = None if desired.account_role is None else desired.account_role.value
        fields: list[str] = []
        steps: list[Step] = []
        if current is None:
            fields.append(
                f"account_role: {role}"
                if role
                else f"namespace_scope: {scope.namespace}={scope.permission.value}"
                if scope
                else ""
            )

            def create(run: _Run) -> None:
                created = run.client.create_service_account(
                    name,
                    description=desired.description,
                    account_role=role,
                    namespace_id=run.namespace_id(scope.namespace) if scope else None,
                    namespace_permission=scope.permission.value if scope else None,
                )
                run.service_account_ids[name] = created.id

            steps.append(Step(_SERVICE_ACCOUNTS, create))
        else:
            current_scope = current.namespace_scope
            if (scope is None) != (current_scope is None) or (
                scope is not None and current_scope is not None
                and self.names_by_id.get(current_scope.namespace_id) != scope.namespace
            ):  # fmt: skip
                raise SpecError(
                    [
                        f"{where}: service account {name} cannot change between "
                        "account-wide and namespace scopes or to another namespace; "
                        "delete it first (its API keys go with it)"
                    ]
                )
            update: dict[str, Any] = {}
            if current.description != desired.description:
                update["description"] = desired.description
                fields.append(_field("description", current.description, desired.description))
            if role is not None and current.account_role != role:
                update["account_role"] = role
                fields.append(_field("account_role", current.account_role, role))
            if (
                scope is not None
                and current_scope is not None
                and current_scope.permission != scope.permission
            ):
                update["namespace_permission"] = scope.permission.value
                fields.append(
                    _field(
                        "namespace_scope.permission",
                        current_scope.permission.value,
                        scope.permission.value,
                    )
                )
            if update:
                update["resource_version"] = current.resource_version
                sa_id = current.id
                steps.append(
                    Step(
                        _SERVICE_ACCOUNTS,
                        _update_service_account(sa_id, update),
                    )
                )
        fields += _permission_fields(grants, current_permissions)
        for namespace, permission in grants.items():
            steps.append(Step(_GRANTS, _service_account_grant(name, namespace, permission)))
        if steps:
            self.changes.append(
                Change(
                    "create" if current is None else "update",
                    "service account",
                    name,
                    fields,
                    steps,
                )
            )


def _value(permission: NamespacePermission | None) -> str | None:
    return None if permission is None else permission.value


def _delete_user(user_id: str) -> Callable[[_Run], None]:
    return lambda run: run.client.delete_user(user_id)


def _user_grant(
    email: str, namespace: str, permission: NamespacePermission | None
) -> Callable[[_Run], object]:
    return lambda run: run.client.set_namespace_access(
        run.namespace_id(namespace), run.user_ids[email], _value(permission)
    )


def _update_group(group_id: str, version: str, update: dict[str, Any]) -> Callable[[_Run], object]:
    """The group's changed fields (``update``: description and/or account_role, None removing
    the role), sent with the version read while planning."""
    return lambda run: run.client.update_group(group_id, resource_version=version, **update)


def _group_grant(
    group: str, namespace: str, permission: NamespacePermission | None
) -> Callable[[_Run], object]:
    return lambda run: run.client.set_group_namespace_permission(
        run.namespace_id(namespace), run.group_ids[group], _value(permission)
    )


def _update_service_account(sa_id: str, update: dict[str, Any]) -> Callable[[_Run], object]:
    return lambda run: run.client.update_service_account(sa_id, **update)


def _delete_service_account(sa_id: str) -> Callable[[_Run], None]:
    return lambda run: run.client.delete_service_account(sa_id)


def _service_account_grant(
    name: str, namespace: str, permission: NamespacePermission | None
) -> Callable[[_Run], object]:
    return lambda run: run.client.set_service_account_namespace_access(
        run.namespace_id(namespace), run.service_account_ids[name], _value(permission)
    )


def _history_body(body: dict[str, Any]) -> Any:
    from controlplane.history_exports.schemas import HistoryExportSinkSet

    return HistoryExportSinkSet(**body)


def _wait_for_operations(run: _Run) -> None:
    for operation_id in list(run.operations):
        try:
            operation = run.client.wait_for_operation(operation_id)
        except TimeoutError as error:
            raise OperationFailed(str(error)) from error
        if operation.state != "FULFILLED":
            raise OperationFailed(
                f"operation {operation_id} ({operation.resource_id}) {operation.state}: "
                f"{operation.failure_reason}"
            )
    run.operations.clear()


def _delete_namespace(namespace_id: str, version: str) -> Callable[[_Run], None]:
    def delete(run: _Run) -> None:
        run.operations.append(
            run.client.delete_namespace(namespace_id, resource_version=version).async_operation.id
        )

    return delete


def _delete_group(group_id: str, version: str) -> Callable[[_Run], None]:
    def delete(run: _Run) -> None:
        run.client.delete_group(group_id, resource_version=version)

    return delete


def plan(
    client: StratusClient, spec: AccountSpec, *, prune: bool = False, wait: bool = True
) -> Plan:
    """Read today's state and diff it with ``spec``: nothing is written. A reference the
    account cannot satisfy (a grant on an unknown namespace) is a SpecError here."""
    planner = _Planner(client, spec, prune=prune, wait=wait)
    planner.namespaces_plan()
    planner.users_plan()
    planner.groups_plan()
    planner.service_accounts_plan()
    planner.sinks_plan()
    return Plan(planner.run.account_id, planner.changes, planner.notices, planner.run)


def execute(plan: Plan) -> ApplyResult:
    """Run the plan's steps phase by phase. A 409 of a stale resource_version stops it with
    ApplyConflict naming the object; any other refusal with ApplyFailed."""
    from controlplane.client import StratusAPIError

    run = plan._run
    steps = sorted(
        ((step, change) for change in plan.changes for step in change.steps),
        key=lambda pair: pair[0].phase,
    )
    applied: list[Change] = []
    all_operations: list[str] = []
    for step, change in steps:
        before = len(run.operations)
        try:
            step.run(run)
        except StratusAPIError as error:
            if error.status == 409 and error.type.endswith(_RESOURCE_VERSION_MISMATCH):
                raise ApplyConflict(change, error.detail) from error
            raise ApplyFailed(change, error) from error
        except OperationFailed as error:
            raise ApplyFailed(None, error) from error
        all_operations += run.operations[before:]
        if change not in applied:
            applied.append(change)
    if run.wait and run.operations:
        try:
            _wait_for_operations(run)
        except OperationFailed as error:
            raise ApplyFailed(None, error) from error
    return ApplyResult(plan, applied, all_operations)
