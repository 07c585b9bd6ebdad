"""A query parameter declared once: the OpenAPI entry and the strict reading come from the same declaration."""

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from vpnmonitor.api.exceptions import BadParameter
from vpnmonitor.api.params import QueryParams, choice_parameter, int_parameter, string_parameter

LIMIT = int_parameter("limit", 1, 100, 30, "Max results")
SORT_BY = choice_parameter("sortBy", ("bytes", "count"), "bytes", description="What to sort by")


def request(query=""):
    return Request(APIRequestFactory().get(f"/x?{query}"))


def test_an_integer_parameter_documents_the_bounds_and_default_it_reads_with():
    assert (LIMIT.name, LIMIT.location, LIMIT.required) == ("limit", "query", False)
    assert LIMIT.type == {"type": "integer", "minimum": 1, "maximum": 100, "default": 30}
    assert LIMIT.description == "Max results (1..100, default 30)."
    assert [LIMIT.read(request(q)) for q in ("", "limit=", "limit=1", "limit=100", "limit=%2042")] == [
        30, 30, 1, 100, 42]
    for value in ("0", "101", "1.5", "true"):
        with pytest.raises(BadParameter) as raised:
            LIMIT.read(request(f"limit={value}"))
        assert raised.value.parameter == "limit"


def test_a_choice_parameter_documents_its_choices_and_default():
    assert (SORT_BY.enum, SORT_BY.default, SORT_BY.description) == (["bytes", "count"], "bytes", "What to sort by")
    assert SORT_BY.read(request()) == "bytes"
    assert SORT_BY.read(QueryParams(request("sortBy=count"))) == "count"
    with pytest.raises(BadParameter, match="must be one of bytes, count"):
        SORT_BY.read(request("sortBy=Count"))


def test_a_parameter_described_again_reads_the_same_and_a_default_can_be_given_at_read_time():
    grouped = LIMIT.described("Groups per page")
    assert (grouped.description, grouped.type, LIMIT.description) == (
        "Groups per page", LIMIT.type, "Max results (1..100, default 30).")
    assert grouped.read(request("limit=7")) == 7
    assert LIMIT.read(request(), default=12) == 12
    with pytest.raises(BadParameter):
        grouped.read(request("limit=101"))


def test_a_required_string_parameter_is_400_when_missing_or_too_long():
    server = string_parameter("server", "Server name", max_length=5, required=True)
    assert server.read(request("server=vpn1")) == "vpn1"
    for query in ("", "server=", "server=vpn-one"):
        with pytest.raises(BadParameter):
            server.read(request(query))
