"""The admin web API (FastAPI, ``/api/v1``)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from starlette.routing import Match, Mount
from starlette.types import Scope

from auth import SecretBox
from controlplane.accounts.endpoints import own_router as own_account_router
from controlplane.accounts.endpoints import router as accounts_router
from controlplane.api_keys.cache import CredentialCache
from controlplane.api_keys.endpoints import router as api_keys_router
from controlplane.audit.endpoints import router as audit_router
from controlplane.audit_sink.endpoints import router as audit_sink_router
from controlplane.billing_account.endpoints import router as billing_account_router
from controlplane.cells.endpoints import router as cells_router
from controlplane.cells.health import CellHealthMetrics, check_ready
from controlplane.config import ApiSettings
from controlplane.console import create_console
from controlplane.exports.endpoints import router as exports_router
from controlplane.gateway_routes.endpoints import router as gateway_routes_router
from controlplane.group_claims.endpoints import router as group_claims_router
from controlplane.groups.endpoints import router as groups_router
from controlplane.history_exports.endpoints import router as history_exports_router
from controlplane.identity.endpoints import router as identity_router
from controlplane.insights.endpoints import router as insights_router
from controlplane.invoices.endpoints import router as invoices_router
from controlplane.kit import http_observability
from controlplane.kit.body_limit import BodyLimitMiddleware
from controlplane.kit.db import (
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
    dispose_read_sessionmaker,
    unit_of_work,
)
from controlplane.kit.errors import install_error_handlers
from controlplane.kit.migrate import head_revisions, migrate
from controlplane.kit.openapi import document_problems
from controlplane.kit.system_cell import temporal_serving
from controlplane.namespaces.endpoints import router as namespaces_router
from controlplane.namespaces.workflows import WORKFLOW_BY_OPERATION
from controlplane.operations.endpoints import router as operations_router
from controlplane.operations.starter import OperationStarter
from controlplane.pricing import load_pricing
from controlplane.quotas.endpoints import router as quotas_router
from controlplane.saml.endpoints import router as saml_router
from controlplane.scim.endpoints import SCIM_PATHS
from controlplane.scim.endpoints import router as scim_router
from controlplane.scim.endpoints import token_router as scim_token_router
from controlplane.scim.errors import SCIM_PREFIX, install_scim_error_handlers
from controlplane.service_accounts.endpoints import grants_router as service_account_grants_router
from controlplane.service_accounts.endpoints import router as service_accounts_router
from controlplane.sign_in.endpoints import router as sign_in_router
from controlplane.sign_in.relying_party import RelyingParty
from controlplane.tenant_metrics.endpoints import router as tenant_metrics_router
from controlplane.tenant_metrics.service import MetricsSources
from controlplane.usage.endpoints import router as usage_router
from controlplane.users.endpoints import router as users_router
from controlplane.workflows.service import CellChannels

# Routes that are deliberately public; every other route must declare an action.
PUBLIC_PATHS = (
    frozenset(
        {
            "/healthz",
            "/readyz",
            "/metrics",
            "/docs",
            "/openapi.json",
            "/redoc",
            # Sign-in authenticates the caller itself (state, hand-off code or session cookie).
            "/api/v1/auth/oidc/providers",
            "/api/v1/auth/oidc/{provider}/login",
            "/api/v1/auth/oidc/{provider}/callback",
            "/api/v1/auth/cli/handoff",
            "/api/v1/auth/session",
            "/api/v1/auth/logout",
            # SAML: the IdP's signed response authenticates the caller (per account).
            "/api/v1/auth/saml/{account_id}/metadata",
            "/api/v1/auth/saml/{account_id}/login",
            "/api/v1/auth/saml/{account_id}/acs",
        }
    )
    | SCIM_PATHS
)  # SCIM: the account's SCIM token authenticates the caller.
# The web console (controlplane/console), mounted at "/" after every API route: its pages
# authenticate with the web session themselves and call the services, whose checks decide.
CONSOLE_MOUNT = "/"


def create_app(settings: ApiSettings, *, run_migrations: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            await asyncio.to_thread(migrate, settings.sqlalchemy_url)
        # A malformed price book stops the API here, naming the file, line and reason.
        app.state.pricing = load_pricing(settings)
        app.state.secret_box = SecretBox.from_file(settings.secrets_key_path)
        # The console's workflow pages reach cells through these (closed below).
        app.state.cell_channels = CellChannels(app.state.secret_box)
        engine = create_engine(settings.sqlalchemy_url)
        app.state.settings = settings
        app.state.migration_heads = head_revisions(settings.sqlalchemy_url)
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.read_sessionmaker = create_read_sessionmaker(engine)
        app.state.credential_cache = CredentialCache(settings.credential_cache_seconds)
        app.state.operation_starter = OperationStarter(
            settings.system_cell_address, WORKFLOW_BY_OPERATION, tls=settings.system_cell_tls
        )
        idp_http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        app.state.relying_party = RelyingParty(settings.oidc_providers, idp_http)
        # The tenant metrics endpoint's cached sources (cells' scrapes, accounts' totals).
        app.state.tenant_metrics = MetricsSources()
        # What the app built at startup (routes, models, mappers: most of the heap) lives as
        # long as the process: out of the cyclic collector's reach, the collections that
        # requests' garbage triggers no longer walk it (it cost milliseconds per request).
        gc.freeze()
        yield
        await idp_http.aclose()
        await app.state.tenant_metrics.aclose()
        await app.state.cell_channels.close()
        await dispose_read_sessionmaker(app.state.read_sessionmaker)
        await engine.dispose()

    app = FastAPI(
        title="Stratus control plane",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        # One server span per request; a child span per dependency and endpoint would cost
        # more than the rest of a read.
        telemetry={"operation_spans": False},
    )
    install_error_handlers(app)
    install_scim_error_handlers(app)
    # Inside the observability middleware, so a 413 still carries a request id and is counted.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    http_observability.install(app, [CellHealthMetrics()])
    # Each router straight under the app: FastAPI matches a request router by router, and
    # one more level of nesting (an /api/v1 router holding them all) walked every router's
    # routes again on each request.
    # The namespaces' routes first: their reads are the hottest (SDK onboarding, the console's
    # polling), and every router tried before them costs each request its matching.
    for router in (
        namespaces_router,
        accounts_router,
        own_account_router,
        quotas_router,
        operations_router,
        gateway_routes_router,
        cells_router,
        users_router,
        service_accounts_router,
        service_account_grants_router,
        groups_router,
        api_keys_router,
        audit_router,
        audit_sink_router,
        identity_router,
        sign_in_router,
        saml_router,
        group_claims_router,
        usage_router,
        invoices_router,
        billing_account_router,
        exports_router,
        history_exports_router,
        insights_router,
        tenant_metrics_router,
        scim_token_router,
    ):
        app.include_router(router, prefix="/api/v1")
    app.include_router(scim_router)
    document_problems(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the API process answers."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> dict[str, str]:
        """Readiness: the database answers and is at this code's migration heads, the system
        cell answers, and no cell keeps failing (503 problem+json naming what is not)."""
        unmet = []
        if not await temporal_serving(settings.system_cell_address, tls=settings.system_cell_tls):
            unmet.append(f"the system cell at {settings.system_cell_address} does not answer")
        async with unit_of_work(request.app.state.sessionmaker) as session:
            await check_ready(
                session, migration_heads=request.app.state.migration_heads, unmet=unmet
            )
        return {"status": "ready"}

    # Last: it answers every path no route above claimed, but the API's own (an /api/ path
    # keeps the API's answers: 404 and 405 problem+json).
    app.router.routes.append(_ConsoleMount(CONSOLE_MOUNT, app=create_console(app.state)))
    return app


class _ConsoleMount(Mount):
    """The console's mount, which never claims a path under ``/api/`` or ``/scim/``: there a
    route that matches the path but not the method must still answer 405, not the console's
    404."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(
            ("/api/", SCIM_PREFIX)
        ):
            return Match.NONE, {}
        return super().matches(scope)


def main() -> None:
    import uvicorn

    from controlplane.kit.telemetry import configure_logging, configure_telemetry

    settings = ApiSettings()
    settings.announce("api")
    configure_logging(settings.log_level, settings.log_format)
    configure_telemetry("stratus-api", settings)
    uvicorn.run(
        create_app(settings, run_migrations=settings.migrate_on_start),
        host=settings.host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # JSON logs: uvicorn's loggers write through the root logger's JSON handler.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )


if __name__ == "__main__":
    main()
