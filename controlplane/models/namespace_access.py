from __future__ import annotations

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from auth import NamespacePermission
from controlplane.models.base import Base, TimestampMixin


class NamespaceAccess(TimestampMixin, Base):
    """A user's or service account's permission on one namespace of its account.

    Deleting the namespace deletes its access rows (a namespace re-created under the same name
    starts with no grants); deleting the user or service account deletes them in its service.
    """

    __tablename__ = "namespace_access"

    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    # "user" or "service_account" (auth.PrincipalKind values).
    principal_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    permission: Mapped[NamespacePermission] = mapped_column(
        Enum(NamespacePermission, native_enum=False, length=16)
    )
