"""Fuzz every operation of the OpenAPI schema (schemathesis): no input gives a 5xx, on either
backend, authenticated (so writes reach the database) and not."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from service_support import BACKENDS, TOKEN, results_with, served

from evalsuite.client import ApiClient


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    yield from served(request.param, tmp_path_factory.mktemp(request.param))


def _seed(server) -> None:
    """Some real rows, so ids 1, 2, ... and the run "seed" exist for generated requests."""
    api = ApiClient(server.url, token=TOKEN)
    api.create_run(name="seed", method="rasa", r=8, k=2, domain="code", base_model="A")
    api.register_checkpoint("seed", epoch=1, uri="/u", sha256="s", final=True)
    job = api.claim("w", 600)
    api.complete(job["id"], "w", results_with({"humaneval_plus": {"pass@1": 0.3}}))


def test_no_server_errors(server):
    _seed(server)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            case.call_and_validate(
                base_url=server.url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                checks=[not_a_server_error],
            )
            case.headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
            anonymous = case.call(base_url=server.url)
            assert anonymous.status_code < 500
            # every write needs the token (the gate's POST computes and writes nothing)
            if case.method.upper() == "POST" and case.path != "/v1/gate":
                assert anonymous.status_code == 401, anonymous.text

        fuzz()
