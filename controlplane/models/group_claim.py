from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin


class GroupClaimConfig(TimestampMixin, Base):
    """An account's group claims: which ID-token claim (OIDC) and which assertion attribute
    (SAML) name the groups a user is in at its identity provider. With a configuration, every
    sign-in replaces the user's ``"idp"`` memberships by the groups its mappings give; without
    one, sign-in leaves memberships alone."""

    __tablename__ = "group_claim_configs"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    oidc_claim: Mapped[str] = mapped_column(String(256))
    saml_attribute: Mapped[str] = mapped_column(String(256))


class GroupClaimMapping(TimestampMixin, Base):
    """One identity-provider group → one Stratus user group of the account. An IdP group may
    map to several groups and several IdP groups to one; deleting the group deletes its
    mappings."""

    __tablename__ = "group_claim_mappings"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("group_claim_configs.account_id", ondelete="CASCADE"),
        primary_key=True,
    )
    idp_group: Mapped[str] = mapped_column(String(256), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
