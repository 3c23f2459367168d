"""Schema-driven fuzzing of LinkRay's own API (schemathesis): every operation of /api/schema/,
called in-process through Django's WSGI app with generated input and the bootstrap token.
No input may reach a 5xx, and every answer must match the schema (status declared, body shape,
content type). Sized to finish well under a minute."""

from __future__ import annotations

import pytest
import schemathesis
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import checks

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 40


def bootstrap_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.LINKRAY_API_TOKEN}"}


# Loaded at collection: the schema endpoint authenticates the bootstrap token without the database.
# (schemathesis' lazy from_fixture does not work with pytest 9.)
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), headers=bootstrap_headers())
pytestmark = pytest.mark.django_db


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_generated_input_within_its_schema(case):
    case.call_and_validate(headers=bootstrap_headers(), checks=CHECKS)
