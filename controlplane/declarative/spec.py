"""The ``stratus apply`` file (``apiVersion: stratus/v1``, ``kind: Account``): what an account
should hold, read and validated as a whole before anything is planned or written.

Namespaces are named by their short name (``payments-dev``), never by their id, so one file
serves any account. Secrets never sit in the file: a sink's ``secret_access_key`` is
``${ENV_VAR}``, read from the environment only when the sink must be written."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from auth import AccountRole, AuthMethod, NamespacePermission
from controlplane.states import SearchAttributeType

API_VERSION = "stratus/v1"
KIND = "Account"

_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_ENV = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)


class SpecError(Exception):
    """The file is not a valid spec: every problem, each as ``path: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodecServer(_Strict):
    endpoint: str
    pass_access_token: bool = False
    include_cross_origin_credentials: bool = False


class Limits(_Strict):
    """Rate limits the tenant asks for; only the operator sets them (plan notices show a
    difference, apply never sends it)."""

    requests_per_second: int = Field(ge=1, le=100_000)
    actions_per_second: int = Field(ge=1, le=100_000)


class Sink(_Strict):
    """An S3 sink. ``secret_access_key`` must be ``${ENV_VAR}``; ``access_key_id`` may be."""

    bucket: str
    prefix: str = ""
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str
    secret_access_key: str

    @field_validator("secret_access_key")
    @classmethod
    def _from_env_only(cls, value: str) -> str:
        if not _ENV.match(value):
            raise ValueError("must be ${ENV_VAR}: secrets are read from the environment only")
        return value

    def access_key_id_if_known(self) -> str:
        """``access_key_id`` with a ``${VAR}`` read from the environment when it is set."""
        match = _ENV.match(self.access_key_id)
        if match is None:
            return self.access_key_id
        return os.environ.get(match.group(1), self.access_key_id)

    def resolved(self, path: str) -> dict[str, Any]:
        """The sink body with ``${ENV}`` values read now (a missing variable: SpecError)."""
        body = self.model_dump()
        for field in ("access_key_id", "secret_access_key"):
            match = _ENV.match(body[field])
            if match:
                value = os.environ.get(match.group(1))
                if value is None:
                    raise SpecError(
                        [f"{path}.{field}: environment variable {match.group(1)} is not set"]
                    )
                body[field] = value
        return body


class NamespaceSpec(_Strict):
    name: str
    retention_days: int = 30
    auth_method: AuthMethod = AuthMethod.MTLS
    ca_certificate_files: list[str] = Field(default_factory=list)
    ca_certificates: str = ""
    certificate_filters: list[dict[str, str]] = Field(default_factory=list)
    delete_protection: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    search_attributes: dict[str, SearchAttributeType] = Field(default_factory=dict)
    codec_server: CodecServer | None = None
    limits: Limits | None = None
    history_export_sink: Sink | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.lower()
        if not 2 <= len(value) <= 39 or not _NAME.match(value) or "--" in value:
            raise ValueError("must be 2-39 of a-z, 0-9 and '-', start with a letter, no '--'")
        return value

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if not 1 <= value <= 90:
            raise ValueError("must be 1..90")
        return value


Permissions = dict[str, NamespacePermission]


class UserSpec(_Strict):
    email: str
    account_role: AccountRole
    namespace_permissions: Permissions | None = Field(
        None, description="namespace name -> permission; absent: not managed by the file"
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value.strip(" @"):
            raise ValueError("must be an email address")
        return value.strip().lower()


class GroupSpec(_Strict):
    name: str
    description: str = ""
    account_role: AccountRole | None = None
    members: list[str] | None = Field(None, description="emails; absent: not managed")
    namespace_permissions: Permissions | None = None

    @field_validator("account_role")
    @classmethod
    def _not_owner(cls, value: AccountRole | None) -> AccountRole | None:
        if value is AccountRole.OWNER:
            raise ValueError("a group never holds owner")
        return value

    @field_validator("members")
    @classmethod
    def _emails(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [email.strip().lower() for email in value]


class NamespaceScopeSpec(_Strict):
    namespace: str
    permission: NamespacePermission


class ServiceAccountSpec(_Strict):
    """Exactly one of ``account_role`` (account-wide) and ``namespace_scope``."""

    name: str
    description: str = ""
    account_role: AccountRole | None = None
    namespace_scope: NamespaceScopeSpec | None = None
    namespace_permissions: Permissions | None = None

    @model_validator(mode="after")
    def _one_scope(self) -> ServiceAccountSpec:
        if (self.account_role is None) == (self.namespace_scope is None):
            raise ValueError("give exactly one of account_role and namespace_scope")
        if self.account_role is AccountRole.OWNER:
            raise ValueError("a service account never holds owner")
        if self.namespace_scope is not None and self.namespace_permissions:
            raise ValueError("a namespace-scoped service account takes no namespace_permissions")
        return self


class Sinks(_Strict):
    usage_export: Sink | None = None
    audit_log: Sink | None = None


class AccountSpec(_Strict):
    """One account's desired state. A list left out (``users:`` absent) is not managed: apply
    neither reads nor prunes that kind."""

    api_version: Literal["stratus/v1"] = Field(alias="apiVersion")
    kind: Literal["Account"]
    namespaces: list[NamespaceSpec] | None = None
    users: list[UserSpec] | None = None
    groups: list[GroupSpec] | None = None
    service_accounts: list[ServiceAccountSpec] | None = None
    sinks: Sinks | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _unique_and_known(self) -> AccountSpec:
        problems: list[str] = []
        for kind, key in (
            ("namespaces", "name"),
            ("users", "email"),
            ("groups", "name"),
            ("service_accounts", "name"),
        ):
            seen: set[str] = set()
            for index, item in enumerate(getattr(self, kind) or []):
                value = getattr(item, key)
                if value in seen:
                    problems.append(f"{kind}[{index}].{key}: {value!r} is named twice")
                seen.add(value)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def certificate_bodies(pem: str) -> frozenset[str]:
    """The certificates of a PEM bundle, as their base64 bodies without whitespace: two
    bundles with the same certificates compare equal however they are laid out."""
    return frozenset(re.sub(r"\s+", "", body) for body in _PEM_BLOCK.findall(pem))


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in part:
            continue
        else:
            text += f".{part}" if text else part
    return text or "(file)"


def _message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse(document: object, *, base_dir: Path | None = None) -> AccountSpec:
    """Validate a loaded YAML/JSON document; CA files are read relative to ``base_dir``.
    Every problem is reported at once as ``path: message`` (SpecError)."""
    if not isinstance(document, dict):
        raise SpecError(["(file): must be a mapping with apiVersion: stratus/v1, kind: Account"])
    try:
        spec = AccountSpec.model_validate(document)
    except ValidationError as error:
        raise SpecError([f"{_location(e['loc'])}: {_message(e)}" for e in error.errors()]) from None
    problems: list[str] = []
    for index, namespace in enumerate(spec.namespaces or []):
        bundle = [namespace.ca_certificates] if namespace.ca_certificates.strip() else []
        for position, name in enumerate(namespace.ca_certificate_files):
            path = Path(name) if Path(name).is_absolute() else (base_dir or Path()) / name
            where = f"namespaces[{index}].ca_certificate_files[{position}]"
            try:
                text = path.read_text()
            except OSError as error:
                problems.append(f"{where}: cannot read {path}: {error.strerror}")
                continue
            if not certificate_bodies(text):
                problems.append(f"{where}: {path} holds no PEM certificate")
            bundle.append(text)
        if not bundle:
            problems.append(
                f"namespaces[{index}]: give ca_certificate_files and/or ca_certificates "
                "(every namespace needs its client CA bundle)"
            )
        elif namespace.ca_certificates.strip() and not certificate_bodies(
            namespace.ca_certificates
        ):
            problems.append(f"namespaces[{index}].ca_certificates: no PEM certificate")
        # The files' certificates join the inline ones: one bundle from here on.
        namespace.ca_certificates = "\n".join(text.strip() + "\n" for text in bundle)
        namespace.ca_certificate_files = []
    for scoped in spec.service_accounts or []:
        if scoped.namespace_scope is not None:
            scoped.namespace_scope.namespace = scoped.namespace_scope.namespace.lower()
    if problems:
        raise SpecError(problems)
    return spec


def load(path: Path) -> AccountSpec:
    """Read and validate a spec file (YAML; JSON is YAML too)."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SpecError([f"{path}: {error.strerror}"]) from None
    except yaml.YAMLError as error:
        raise SpecError([f"{path}: not valid YAML: {error}"]) from None
    return parse(document, base_dir=path.parent)


def dump(document: dict[str, Any]) -> str:
    """A spec document as YAML, keys in the order given (long PEM blocks as literal text)."""

    class _Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, text)
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
