"""What every command shares: the global options (``--api-url``, ``--api-key``, ``--output``),
accepted before or after the subcommand; the :class:`Context` they make; output in text or JSON;
and the mapping of API errors to a message and an exit code."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic import BaseModel

    from controlplane.client import StratusAPIError, StratusClient

DEFAULT_API_URL = "http://127.0.0.1:8080"
_GLOBAL = " (global option)"
_API_KEY_HELP = (
    "API key (Bearer); without one, the key saved by account create --save or the session of "
    "stratus login"
)


class Output(StrEnum):
    text = "text"
    json = "json"


T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """The global options, as one command sees them."""

    api_url: str
    api_key: str | None
    output: Output

    @classmethod
    def of(cls, ctx: typer.Context) -> Context:
        """The context :func:`global_options` stored (with the command's own overrides)."""
        obj = ctx.find_object(cls)
        if obj is None:
            raise RuntimeError("a stratus command ran without the global options callback")
        return obj

    def client(self) -> StratusClient:
        """Authenticated by --api-key (or STRATUS_API_KEY), else by the credential stored for
        this API URL: the key ``account create --save`` saved or the session ``stratus login``
        keeps, whichever was saved last."""
        from controlplane.cli._session_store import load_api_key, load_session
        from controlplane.client import StratusClient

        api_key = self.api_key
        session = None
        if api_key is None:
            saved = load_api_key(self.api_url)
            api_key = saved.api_key if saved else None
        if api_key is None:
            session = load_session(self.api_url)
        return StratusClient(
            self.api_url,
            api_key,
            session=(session.session_token, session.csrf_token) if session else None,
        )

    @contextmanager
    def connected(self) -> Iterator[StratusClient]:
        """A client for several calls; an API error exits with its problem, an unreachable
        API with one line that names the URL."""
        import httpx

        from controlplane.client import StratusAPIError

        try:
            with self.client() as client:
                yield client
        except StratusAPIError as error:
            api_error(error)
        except httpx.TransportError as error:
            fail(f"cannot reach the Stratus API at {self.api_url}: {error}")

    def call(self, action: Callable[[StratusClient], T]) -> T:
        """Run one API call; an API error exits with its problem."""
        with self.connected() as client:
            return action(client)

    def emit_rows(self, key: str, rows: Sequence[BaseModel], text: str) -> None:
        """Print every row of a followed list: ``{key: [...], "next_page_token": ""}`` with
        ``--output json`` (the shape of one page that was the last), else ``text``."""
        listing = {key: [row.model_dump(mode="json") for row in rows], "next_page_token": ""}
        self.emit(listing, text)

    def emit(self, model: BaseModel | dict[str, Any], text: str) -> None:
        """Print ``model`` as JSON with ``--output json``, else ``text``."""
        from pydantic import BaseModel

        if self.output is Output.json:
            data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
            typer.echo(json.dumps(data, indent=2))
        else:
            typer.echo(text)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on standard error and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def api_error(error: StratusAPIError) -> NoReturn:
    """Exit 1 with the problem's detail, field, status and type."""
    field = f" (field: {error.field})" if error.field else ""
    fail(f"{error.detail}{field} [{error.status} {error.type}]")


def global_options(
    ctx: typer.Context,
    api_url: Annotated[
        str, typer.Option(envvar="STRATUS_API_URL", help="Control-plane URL")
    ] = DEFAULT_API_URL,
    api_key: Annotated[
        str | None, typer.Option(envvar="STRATUS_API_KEY", help=_API_KEY_HELP)
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json")] = Output.text,
) -> None:
    """Stratus: Temporal workflows as a service."""
    ctx.obj = Context(api_url=api_url, api_key=api_key, output=output)


# The same options on every command, without environment variables or defaults: given after
# the command they override what was given before it (or read from the environment).
_OVERRIDES = [
    inspect.Parameter(
        "global_api_url",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--api-url",
                help="Control-plane URL" + _GLOBAL,
                show_default=False,
            ),
        ],
    ),
    inspect.Parameter(
        "global_api_key",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--api-key",
                help=_API_KEY_HELP + _GLOBAL,
                show_default=False,
            ),
        ],
    ),
    inspect.Parameter(
        "global_output",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Output | None,
            typer.Option(
                "--output",
                "-o",
                help="text or json" + _GLOBAL,
                show_default=False,
            ),
        ],
    ),
]
_CONTEXT_PARAMETER = inspect.Parameter(
    "global_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context
)


def _with_global_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command``, also accepting the global options; those given replace the context's."""
    signature = inspect.signature(command, eval_str=True)
    parameters = list(signature.parameters.values())
    clash = {p.name for p in (*_OVERRIDES, _CONTEXT_PARAMETER)} & signature.parameters.keys()
    if clash:
        raise TypeError(f"{command.__qualname__} has parameters named like global ones: {clash}")
    own_context = next((p.name for p in parameters if p.annotation is typer.Context), None)

    @functools.wraps(command)
    def run(**kwargs: Any) -> Any:
        ctx: typer.Context = kwargs.pop(_CONTEXT_PARAMETER.name)
        given = {
            field: value
            for field, value in (
                ("api_url", kwargs.pop("global_api_url")),
                ("api_key", kwargs.pop("global_api_key")),
                ("output", kwargs.pop("global_output")),
            )
            if value is not None
        }
        if given:
            ctx.obj = dataclasses.replace(Context.of(ctx), **given)
        if own_context is not None:
            kwargs[own_context] = ctx
        return command(**kwargs)

    kept = [p for p in parameters if p.name != own_context]
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*kept, _CONTEXT_PARAMETER, *_OVERRIDES]
    )
    return run


def accept_global_options(app: typer.Typer) -> None:
    """Let every command of ``app`` and of its groups, at any depth, take the global options
    after its name too (``stratus namespace list --output json``). Call it once, after every
    command is registered."""
    for command in app.registered_commands:
        if command.callback is not None:
            command.callback = _with_global_options(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            accept_global_options(group.typer_instance)
