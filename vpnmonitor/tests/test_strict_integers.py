"""What a JSON integer is, wherever a request body needs one."""

import pytest
from rest_framework import serializers

from vpnmonitor.api.parsers import StrictIntegerField, is_json_integer, load_json


@pytest.mark.parametrize(("body", "integer"), [
    ("1", True), ("0", True), ("-7", True), ("123456789012345678901234567890", True),
    ("true", False), ("false", False), ("1.0", False), ("1e3", False), ('"1"', False), ("null", False),
    ("[1]", False),
])
def test_only_a_json_integer_is_an_integer(body, integer):
    assert is_json_integer(load_json(body.encode())) is integer


class Batch(serializers.Serializer):
    packets = StrictIntegerField(min_value=0, max_value=100)


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None])
def test_the_serializer_field_refuses_true_a_float_and_a_string(value):
    batch = Batch(data={"packets": value})
    assert not batch.is_valid()
    assert batch.errors["packets"] == (["This field may not be null."] if value is None
                                       else ["A JSON integer is required."])


def test_the_serializer_field_takes_an_integer_and_keeps_its_bounds():
    assert Batch(data={"packets": 7}).is_valid()
    batch = Batch(data={"packets": 101})
    assert not batch.is_valid()
    assert batch.errors["packets"] == ["Ensure this value is less than or equal to 100."]
