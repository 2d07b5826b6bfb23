"""FastAPI dependencies on what the app holds for every request (a unit of work, settings,
the price book, the secrets box), declared once as ``Annotated`` aliases. Authentication and
domain services are in ``controlplane.api.deps``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth import SecretBox
from controlplane.config import ApiSettings
from controlplane.kit.db import unit_of_work
from controlplane.pricing import Pricing


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with unit_of_work(sessionmaker) as session:
        yield session


# scope="function": commit (and run after-commit actions) before the response is sent, so a
# client never sees a 2xx for something that was not stored.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


async def _read_session(request: Request) -> AsyncSession:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.read_sessionmaker
    return sessionmaker()


# A read-only unit of work (kit.db.ReadOnlySession), for handlers known not to write: declared
# explicitly by each, with ``requires(action, read_only=True)`` so authentication shares it.
# Not a generator: such a session holds nothing between its reads, so there is nothing to end
# when the request does (FastAPI's exit handling of a generator dependency, a task-group
# cancel scope and an exit stack entry, cost more than a cached read's own work).
ReadSessionDep = Annotated[AsyncSession, Depends(_read_session)]


# Dependencies that only read app state are coroutines: FastAPI runs a plain function in its
# thread pool, a thread hand-off per request for nothing.
async def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[ApiSettings, Depends(_settings)]


async def _pricing(request: Request) -> Pricing:
    pricing: Pricing = request.app.state.pricing
    return pricing


PricingDep = Annotated[Pricing, Depends(_pricing)]


async def _secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(_secret_box)]
