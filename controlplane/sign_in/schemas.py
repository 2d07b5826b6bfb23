from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class IdentityProviderOut(BaseModel):
    name: str


class IdentityProviderList(BaseModel):
    providers: list[IdentityProviderOut]


class SessionOut(BaseModel):
    """The signed-in session. Send ``csrf_token`` as ``X-CSRF-Token`` on state-changing
    requests authenticated by the cookie."""

    session_id: str
    principal_kind: str = Field(default="user", description="`user`, or `operator`")
    user_id: str | None = Field(description="None for the operator's session")
    email: str | None
    account_id: str | None
    account_role: str | None
    identity_provider: str
    csrf_token: str
    expires_at: dt.datetime


class CliHandoffIn(BaseModel):
    code: str = Field(min_length=1, max_length=128)
    verifier: str = Field(min_length=43, max_length=128)


class CliSessionOut(SessionOut):
    """For the CLI, which keeps the token itself (``~/.config/stratus/session.json``)."""

    session_token: str


class ConsoleLinkOut(BaseModel):
    """A one-time console sign-in link: opening it signs the caller's user (or, with the
    operator key, the operator) in, once."""

    url: str
    expires_at: dt.datetime
