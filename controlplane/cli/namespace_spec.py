"""``stratus namespace tag|search-attribute|codec-server|delete-protection``: the governance
parts of a namespace's spec (Temporal Cloud's tcld names where it has them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from controlplane.cli._context import Context, fail
from controlplane.cli._options import NamespaceOption
from controlplane.cli.namespace import WaitOption, _NoChange, _update
from controlplane.states import SearchAttributeType

if TYPE_CHECKING:
    from controlplane.namespaces.schemas import NamespaceOut

tag_app = typer.Typer(no_args_is_help=True, help="Key/value tags of a namespace (chargeback).")
search_attribute_app = typer.Typer(
    no_args_is_help=True, help="Custom search attributes of a namespace."
)
codec_server_app = typer.Typer(
    no_args_is_help=True, help="The codec server the console's browser decodes payloads with."
)
delete_protection_app = typer.Typer(
    no_args_is_help=True, help="Refuse deletion of a namespace until turned off."
)


def _tags_text(tags: dict[str, str]) -> str:
    return "\n".join(f"{key}={value}" for key, value in tags.items()) or "no tags"


@tag_app.command("list")
def tag_list(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """The namespace's tags, key=value one per line."""
    c = Context.of(ctx)
    namespace = c.call(lambda client: client.get_namespace(namespace_id))
    c.emit({"namespace_id": namespace_id, "tags": namespace.tags}, _tags_text(namespace.tags))


@tag_app.command("set")
def tag_set(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    tags: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...", help="Tags to set")],
) -> None:
    """Set tags (others keep their value)."""
    upsert: dict[str, str] = {}
    for text in tags:
        key, equals, value = text.partition("=")
        if not equals:
            fail(f"{text!r}: give tags as key=value")
        upsert[key] = value
    c = Context.of(ctx)
    namespace = c.call(lambda client: client.update_namespace_tags(namespace_id, upsert=upsert))
    c.emit(namespace, _tags_text(namespace.tags))


@tag_app.command("remove")
def tag_remove(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="Tag keys to remove")],
) -> None:
    """Remove tags by key."""
    c = Context.of(ctx)
    namespace = c.call(lambda client: client.update_namespace_tags(namespace_id, remove=keys))
    c.emit(namespace, _tags_text(namespace.tags))


@search_attribute_app.command("list")
def search_attribute_list(ctx: typer.Context, namespace_id: NamespaceOption) -> None:
    """The namespace's custom search attributes, name and type."""
    c = Context.of(ctx)
    namespace = c.call(lambda client: client.get_namespace(namespace_id))
    text = "\n".join(f"{name}\t{kind}" for name, kind in namespace.search_attributes.items())
    c.emit(
        {"namespace_id": namespace_id, "search_attributes": namespace.search_attributes},
        text or "no custom search attributes",
    )


@search_attribute_app.command("add")
def search_attribute_add(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    name: Annotated[str, typer.Option(help="Attribute name")],
    type_: Annotated[SearchAttributeType, typer.Option("--type", help="Its type")],
    wait: WaitOption = False,
) -> None:
    """Add a custom search attribute (applied to the cell by an operation)."""

    def change(namespace: NamespaceOut) -> dict[str, Any]:
        if namespace.search_attributes.get(name) == type_:
            raise _NoChange(f"{name} is already a {type_.value} attribute")
        return {"search_attributes": {**namespace.search_attributes, name: type_}}

    _update(ctx, namespace_id, wait, change)


@search_attribute_app.command("rename")
def search_attribute_rename(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    existing_name: Annotated[str, typer.Option(help="Its current name")],
    new_name: Annotated[str, typer.Option(help="Its new name")],
    wait: WaitOption = False,
) -> None:
    """Rename a custom search attribute; stored values are found under the new name."""
    _update(
        ctx, namespace_id, wait, lambda _: {"rename_search_attributes": {existing_name: new_name}}
    )


@search_attribute_app.command("remove")
def search_attribute_remove(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    name: Annotated[str, typer.Option(help="Attribute name")],
    wait: WaitOption = False,
) -> None:
    """Remove a custom search attribute."""

    def change(namespace: NamespaceOut) -> dict[str, Any]:
        if name not in namespace.search_attributes:
            raise _NoChange(f"there is no search attribute {name}")
        kept = {key: kind for key, kind in namespace.search_attributes.items() if key != name}
        return {"search_attributes": kept}

    _update(ctx, namespace_id, wait, change)


@codec_server_app.command("set")
def codec_server_set(
    ctx: typer.Context,
    namespace_id: NamespaceOption,
    endpoint: Annotated[str, typer.Option(help="https URL (http only to localhost)")],
    pass_access_token: Annotated[
        bool, typer.Option("--pass-access-token", help="Send the console's access token")
    ] = False,
    include_cross_origin_credentials: Annotated[
        bool,
        typer.Option("--include-cross-origin-credentials", help="Send the browser's cookies"),
    ] = False,
    wait: WaitOption = False,
) -> None:
    """Set the codec server the console's workflow pages decode payloads with."""
    from controlplane.namespaces.schemas import CodecServerSpec

    codec = CodecServerSpec(
        endpoint=endpoint,
        pass_access_token=pass_access_token,
        include_cross_origin_credentials=include_cross_origin_credentials,
    )
    _update(ctx, namespace_id, wait, lambda _: {"codec_server": codec})


@codec_server_app.command("remove")
def codec_server_remove(
    ctx: typer.Context, namespace_id: NamespaceOption, wait: WaitOption = False
) -> None:
    """Remove the codec server."""

    def change(namespace: NamespaceOut) -> dict[str, Any]:
        if namespace.codec_server is None:
            raise _NoChange("no codec server is set")
        return {"remove_codec_server": True}

    _update(ctx, namespace_id, wait, change)


def _protection(enabled: bool) -> Any:
    def change(namespace: NamespaceOut) -> dict[str, Any]:
        if namespace.lifecycle.enable_delete_protection == enabled:
            raise _NoChange(f"delete protection is already {'on' if enabled else 'off'}")
        return {"delete_protection": enabled}

    return change


@delete_protection_app.command("enable")
def delete_protection_enable(
    ctx: typer.Context, namespace_id: NamespaceOption, wait: WaitOption = False
) -> None:
    """Refuse deletion of the namespace until disabled."""
    _update(ctx, namespace_id, wait, _protection(True))


@delete_protection_app.command("disable")
def delete_protection_disable(
    ctx: typer.Context, namespace_id: NamespaceOption, wait: WaitOption = False
) -> None:
    """Allow deletion of the namespace again."""
    _update(ctx, namespace_id, wait, _protection(False))
