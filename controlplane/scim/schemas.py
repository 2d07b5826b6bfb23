"""The ``/api/v1/scim-token`` bodies."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class ScimTokenOut(BaseModel):
    exists: bool = Field(description="Whether the account has a SCIM token (SCIM is on)")
    created_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = Field(
        None, description="When the identity provider last used it (to the minute)"
    )
    scim_base_url: str = Field(description="Where the identity provider sends SCIM requests")


class ScimTokenCreated(ScimTokenOut):
    token: str = Field(description="Shown once: give it to the identity provider")
