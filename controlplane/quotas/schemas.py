from __future__ import annotations

from pydantic import BaseModel, Field

from controlplane.quotas.limits import MAX_QUOTA, Quota


class QuotaOut(BaseModel):
    quota: Quota
    limit: int
    is_default: bool
    # For api_keys_per_principal: the most keys one principal of the account holds.
    usage: int


class AccountQuotasOut(BaseModel):
    account_id: str
    quotas: list[QuotaOut]


class AccountQuotasSet(BaseModel):
    """The quotas to change; a field left out keeps its value, ``null`` restores the default."""

    namespaces: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    users: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    service_accounts: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    api_keys_per_principal: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    concurrent_operations: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    tags_per_namespace: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    groups: int | None = Field(default=None, ge=0, le=MAX_QUOTA)

    def changes(self) -> dict[Quota, int | None]:
        return {Quota(name): getattr(self, name) for name in sorted(self.model_fields_set)}
