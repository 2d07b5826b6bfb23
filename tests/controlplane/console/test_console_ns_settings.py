"""The namespace settings form and the settings page over HTTP against a real Stratus:
retention, auth method and certificate filters changed through the API's service (audited),
a stale form refused with a clear message, field errors next to their field, the detail body
polled only while something is changing, a `read` user without edit controls and refused
anyway, the SAML settings (the SP metadata equal to the API's), and the console paths a
sign-in may return to (never another origin or the API)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from console_support import all_signed_in, csrf_token, html_page, namespace_reader
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant, wait_until

from controlplane.console._namespaces import FILTER_INPUTS
from controlplane.sign_in.console_return import console_path

STALE_TEXT = "This namespace changed since you loaded the page"


@dataclass
class Settings:
    tenant: Tenant
    namespace_id: str
    owner: httpx.Client
    reader: httpx.Client


@pytest.fixture(scope="module")
def setup(stratus: StratusUp) -> Iterator[Settings]:
    tenant = new_tenant(stratus, "Settled")
    namespace_id = create_active_namespace(stratus, tenant, "tuned")
    _, reader_key = namespace_reader(stratus, tenant, namespace_id, "reader@settled.example")
    with all_signed_in(stratus, tenant.api_key, reader_key) as (owner, reader):
        yield Settings(tenant, namespace_id, owner, reader)


def _resource_version(page: str) -> str:
    match = re.search(r'name="resource_version" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def _wait_active(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> None:
    with tenant.client(stratus) as client:
        wait_until(lambda: client.get_namespace(namespace_id).state == "ACTIVE", timeout=120)


def _form(token: str, version: str, **fields: object) -> dict[str, object]:
    form: dict[str, object] = {
        "csrf_token": token,
        "resource_version": version,
        "retention_days": "7",
        "auth_method": "mtls",
        "filter_cn": [""],
        "filter_o": [""],
        "filter_ou": [""],
        "filter_san": [""],
    }
    form.update(fields)
    return form


def test_settings_change_goes_through_the_service_and_is_audited(
    stratus: StratusUp, setup: Settings
) -> None:
    path = f"/namespaces/{setup.namespace_id}"
    page = html_page(setup.owner.get(path), 200)
    assert 'action="/namespaces/' + setup.namespace_id + '/settings"' in page
    assert 'hx-trigger="every 2s"' not in page  # ACTIVE, operation done: no polling
    version = _resource_version(page)
    form = _form(
        csrf_token(setup.owner),
        version,
        retention_days="14",
        auth_method="mtls_or_api_key",
        filter_cn=["worker-*", ""],
        filter_o=["Settled", ""],
        filter_ou=["", ""],
        filter_san=["", ""],
    )
    saved = setup.owner.post(f"{path}/settings", data=form)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == path

    # While the update runs, the detail page polls its status section; once done it stops.
    live = html_page(setup.owner.get(f"{path}/live"), 200)
    if 'data-state="ACTIVE"' not in live:
        assert f'hx-get="/namespaces/{setup.namespace_id}/status' in live
    _wait_active(stratus, setup.tenant, setup.namespace_id)
    wait_until(
        lambda: 'hx-trigger="every 2s"' not in setup.owner.get(f"{path}/live").text, timeout=60
    )
    final = html_page(setup.owner.get(path), 200)
    assert 'data-operation-state="FULFILLED"' in final
    assert 'value="worker-*"' in final

    with setup.tenant.client(stratus) as client:
        namespace = client.get_namespace(setup.namespace_id)
        events = client.list_audit_logs().audit_logs
    assert namespace.retention_days == 14
    assert namespace.auth_method == "mtls_or_api_key"
    assert namespace.certificate_filters == [{"common_name": "worker-*", "organization": "Settled"}]
    update = next(e for e in events if e.action == "namespace.update")
    assert update.target == setup.namespace_id
    assert "owner@settled.example" in update.actor
    assert update.details["retention_days"] == 14
    assert update.details["auth_method"] == "mtls_or_api_key"
    assert update.details["certificate_filters"] == [
        {"common_name": "worker-*", "organization": "Settled"}
    ]

    # The same form sent again changes nothing: no second update, no operation.
    again = setup.owner.post(
        f"{path}/settings",
        data={**form, "resource_version": _resource_version(final), "retention_days": "14"},
    )
    assert again.status_code == 303, again.text
    with setup.tenant.client(stratus) as client:
        assert client.get_namespace(setup.namespace_id).resource_version == _resource_version(final)


def test_a_stale_form_is_refused_with_a_clear_message(stratus: StratusUp, setup: Settings) -> None:
    _wait_active(stratus, setup.tenant, setup.namespace_id)
    path = f"/namespaces/{setup.namespace_id}"
    token = csrf_token(setup.owner)
    stale = setup.owner.post(
        f"{path}/settings", data=_form(token, "an-old-version", retention_days="21")
    )
    page = html_page(stale, 409)
    assert STALE_TEXT in page
    # The page shows the namespace as it is now, with its current resource_version.
    with setup.tenant.client(stratus) as client:
        namespace = client.get_namespace(setup.namespace_id)
    assert _resource_version(page) == namespace.resource_version
    assert namespace.retention_days != 21
    # The CA forms share the same helper and the same answer.
    removed = setup.owner.post(
        f"{path}/cas/remove",
        data={"csrf_token": token, "resource_version": "an-old-version", "fingerprint": "x"},
    )
    assert STALE_TEXT in html_page(removed, 409)


def test_bad_values_are_shown_next_to_their_field(stratus: StratusUp, setup: Settings) -> None:
    _wait_active(stratus, setup.tenant, setup.namespace_id)
    path = f"/namespaces/{setup.namespace_id}"
    token = csrf_token(setup.owner)
    version = _resource_version(setup.owner.get(path).text)
    cases = [
        ({"retention_days": "0"}, "retention_days", "retention_days must be between 1 and 90"),
        ({"retention_days": "soon"}, "retention_days", "whole number of days"),
        ({"auth_method": "carrier-pigeon"}, "auth_method", "choose an authentication method"),
        (
            {"filter_cn": ["a*b*"]},
            "certificate_filters",
            "certificate_filters: filter #1",
        ),
    ]
    for fields, field, message in cases:
        page = html_page(
            setup.owner.post(f"{path}/settings", data=_form(token, version, **fields)), 400
        )
        error = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', page)
        assert error, page
        assert message in error.group(1)
        assert "Nothing was changed" in page
    with setup.tenant.client(stratus) as client:
        assert client.get_namespace(setup.namespace_id).resource_version == version


def test_a_polled_namespace_that_is_gone_sends_the_page_to_the_list(setup: Settings) -> None:
    """Deleted while its page polled, or never there (another account's ids take the same
    service path, so the same answer): htmx leaves for the list."""
    live = setup.owner.get(f"/namespaces/nothing.{setup.tenant.account_id}/live")
    assert live.status_code == 404
    assert live.headers["hx-redirect"] == "/namespaces"
    assert live.content == b""


def test_a_read_user_sees_no_edit_control_and_is_refused(
    stratus: StratusUp, setup: Settings
) -> None:
    path = f"/namespaces/{setup.namespace_id}"
    page = html_page(setup.reader.get(path), 200)
    assert f'/namespaces/{setup.namespace_id}/settings"' not in page
    assert "Save settings" not in page
    assert 'name="retention_days"' not in page
    assert "Certificate filters" in page  # shown read-only
    token = csrf_token(setup.reader)
    refused = setup.reader.post(f"{path}/settings", data=_form(token, "x", retention_days="3"))
    assert "may not perform namespace.update" in html_page(refused, 403)
    # Refused also when the form would change nothing.
    with setup.tenant.client(stratus) as client:
        namespace = client.get_namespace(setup.namespace_id)
    unchanged = _form(
        token,
        namespace.resource_version,
        retention_days=str(namespace.retention_days),
        auth_method=namespace.auth_method,
        **{
            name: [row.get(key, "") for row in namespace.certificate_filters] + [""]
            for key, name in FILTER_INPUTS.items()
        },
    )
    same = setup.reader.post(f"{path}/settings", data=unchanged)
    assert "may not perform namespace.update" in html_page(same, 403)
    added = setup.reader.post(
        f"{path}/cas",
        data={"csrf_token": token, "resource_version": "x", "accepted_client_ca": "x"},
    )
    assert "may not perform namespace.update" in html_page(added, 403)


def test_settings_page_serves_the_apis_sp_metadata(stratus: StratusUp, setup: Settings) -> None:
    page = html_page(setup.owner.get("/settings"), 200)
    account = setup.tenant.account_id
    assert f"/api/v1/auth/saml/{account}/acs" in page
    assert 'action="/settings/saml"' in page
    download = setup.owner.get("/settings/saml/sp-metadata.xml")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/samlmetadata+xml")
    assert "attachment" in download.headers["content-disposition"]
    with http(stratus, None) as client:
        served = client.get(f"/auth/saml/{account}/metadata")
    assert served.status_code == 200
    assert download.content == served.content


def test_saml_metadata_upload_refusals(setup: Settings) -> None:
    token = csrf_token(setup.owner)
    empty = setup.owner.post("/settings/saml", data={"csrf_token": token, "metadata_xml": " "})
    page = html_page(empty, 400)
    assert re.search(r'id="metadata_xml-error">choose the IdP', page), page
    bad = setup.owner.post(
        "/settings/saml", data={"csrf_token": token, "metadata_xml": "<not-metadata/>"}
    )
    assert 'id="metadata_xml-error"' in html_page(bad, 400)
    # A `read` user sees the SP side, not the upload form, and is refused anyway.
    reader_page = html_page(setup.reader.get("/settings"), 200)
    assert 'action="/settings/saml"' not in reader_page
    assert "Download SP metadata" in reader_page
    refused = setup.reader.post(
        "/settings/saml", data={"csrf_token": csrf_token(setup.reader), "metadata_xml": "<x/>"}
    )
    assert "may not configure SAML sign-in" in html_page(refused, 403)


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example/namespaces",
        "/\\evil.example",
        "/namespaces\\..\\x",
        "/api/v1/namespaces",
        "/api",
        "javascript:alert(1)",
        "namespaces",
        "/namespaces\r\nSet-Cookie: x=y",
        "/namespaces#frag",
        "/" + "x" * 600,
        "",
    ],
)
def test_only_console_paths_are_places_to_return_to(value: str) -> None:
    assert console_path(value) is None


def test_console_paths_are_kept() -> None:
    for value in ("/namespaces", "/namespaces/a.b12cd", "/settings?note=x", "/"):
        assert console_path(value) == value


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example", "/api/v1/namespaces"])
def test_a_sign_in_page_ignores_a_foreign_return_to(stratus: StratusUp, evil: str) -> None:
    with http(stratus, None) as client:
        page = client.get(stratus.api_url + "/sign-in", params={"return_to": evil})
        assert page.status_code == 200
        assert "evil" not in page.text
        assert 'name="return_to" value="/namespaces"' in page.text
        saml = client.get(
            stratus.api_url + "/sign-in/saml", params={"account": "abcde", "return_to": evil}
        )
    assert saml.status_code == 303
    assert saml.headers["location"] == "/api/v1/auth/saml/abcde/login?return_to=%2Fnamespaces"
