from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin


class SamlIdpConfig(TimestampMixin, Base):
    """An account's SAML identity provider: the metadata XML its owner or admin uploaded.

    One per account; uploading again replaces it. ``idp_entity_id`` and ``sso_url`` are read
    from the metadata when it is validated, so sign-in does not re-derive them.
    """

    __tablename__ = "saml_idp_configs"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    idp_entity_id: Mapped[str] = mapped_column(String(1024))
    sso_url: Mapped[str] = mapped_column(Text)
    metadata_xml: Mapped[str] = mapped_column(Text)
