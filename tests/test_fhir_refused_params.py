"""A search the server refuses for a parameter no fallback can leave out: the error names it."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from fhir_fakes import SLE, TOKENS, oo, population
from test_fhir_pull import PageFake, settings

from cohort.errors import ServerError
from cohort.source.fhir import pull


def test_a_refusal_naming_a_parameter_that_cannot_be_left_out_says_which(store):
    """A server taking one code per search refused the screening search's list of SLE codes
    and the run failed "GET /r4/Condition: HTTP 400: error not-supported", no word of what it
    refused. The error now names the parameter its answer names (cohort's own parameter name,
    never the answer's text or a value)."""
    def edit(req, status, body):
        if "," in dict(parse_qsl(urlsplit(req.url).query)).get("code", ""):
            return 400, oo("Only one value is supported for the code parameter", "not-supported")
        return status, body

    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = edit
        with pytest.raises(ServerError) as caught:
            pull("uci", settings(), store, TOKENS, screen_tokens=[SLE, "http://snomed.info/sct|200936003"])
    assert str(caught.value) == (
        "GET /r4/Condition: HTTP 400: error not-supported (the answer names the search's "
        "parameter 'code', which cannot be left out)"
    )
    assert caught.value.status == 400  # type: ignore[attr-defined]
