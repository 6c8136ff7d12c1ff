"""Schemathesis over the OpenAPI schema, in process (ASGI), with a token holding every role: no
request it generates, fitting the schema or not, gets a server error or a response that breaks the
schema (status code, content type, headers and body as documented). A few examples per operation.

(schemathesis's lazy pytest loader does not run under pytest 9, so the operations' strategies are
driven by Hypothesis directly; the checks are schemathesis's own, via call_and_validate.)
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from api.settings import ApiSettings
from ledger.settings import Settings
from tests.api_fixtures import auth, booking_body, write_token_file

EXAMPLES_PER_MODE = 10


def _seed(client) -> None:
    """Something for the generated requests to find: a booking awaiting approval and a reversal."""
    big = booking_body("SEED-BIG", amount="20.000,00", category="egt.aktivierung", case_ref="")
    assert client.post("/bookings", json=big, headers=auth("clerk")).status_code == 201
    assert client.post("/bookings", json=booking_body("SEED-1"), headers=auth("clerk")).status_code == 201
    assert (
        client.post("/bookings/SEED-1/reverse", json={"reason": "x"}, headers=auth("clerk")).status_code
        == 201
    )


def test_no_server_error_and_every_response_as_documented(tmp_path):
    app = create_app(
        Settings(data_dir=tmp_path / "var", _env_file=None),
        ApiSettings(env="production", tokens_file=write_token_file(tmp_path / "tokens.toml"), _env_file=None),
    )
    failures: dict[str, BaseException] = {}
    # The schema as served; requests go to the app in process. schemathesis starts the app's
    # lifespan once, on its first request, and keeps it until shutdown_lifespans().
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # The token is always sent (below); 401s have tests of their own (test_api_auth, test_api_bookings).
    schema.config.generation.update(with_security_parameters=False)
    try:
        with asgi.get_client(app) as client:
            _seed(client)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 17
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES_PER_MODE,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def check(case) -> None:
                    # Not checked: that every schema-valid body is accepted. The schema states types
                    # and lengths; the catalogue, calendar dates and the books' state answer 422/409.
                    case.call_and_validate(headers=auth("all"), excluded_checks=[positive_data_acceptance])

                try:
                    check()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (GET /health)
                except Exception as e:  # noqa: BLE001 - all operations run; every failure is reported
                    failures[f"{operation.label} ({mode})"] = e
    finally:
        asgi.shutdown_lifespans()  # closes the store now rather than at interpreter exit
    assert not failures, "\n\n".join(f"{label}:\n{e}" for label, e in failures.items())
