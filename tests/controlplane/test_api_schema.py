"""Schemathesis against the running API's own ``/openapi.json`` with an account owner's key:
on every operation, with data that fits the document and data that does not, no answer is a
5xx and none contradicts the document (status, content type, body schema). Examples are
bounded and derandomized so the run is short and repeatable.

The API runs alone (no worker, gateway or cells) on a real SQLite database, so nothing the
generated requests store is acted on (an export sink is never contacted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from support import ApiAlone

pytestmark = pytest.mark.slow  # it runs the API as its own process (ApiAlone)

EXAMPLES_PER_MODE = 10


@pytest.fixture(scope="module")
def schema_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiAlone, str]]:
    api = ApiAlone(tmp_path_factory.mktemp("schema-api"))
    try:
        api.start()
        yield api, api.new_tenant("Fuzzed")
    finally:
        api.stop()


def test_api_answers_as_its_schema_says(schema_api: tuple[ApiAlone, str]) -> None:
    api, owner_key = schema_api
    loaded = schemathesis.openapi.from_url(api.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {owner_key}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) > 40, "every route is in the document"
    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=strategy)
        @settings(
            max_examples=2 * EXAMPLES_PER_MODE,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=api.url,
                headers=headers,
                timeout=30,
                # The document cannot say every rule (a CA must be a real CA, an email an
                # address), so data that fits it may still get the 400 it declares.
                excluded_checks=[positive_data_acceptance],
            )

        try:
            exercise()
        except Exception as failure:  # collect every operation's failure
            failures[operation.label] = str(failure)[:2000]
    report = "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert not failures, f"{len(failures)} operations failed:\n\n{report}"
