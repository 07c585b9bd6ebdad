"""Request bodies: every body is read as strict JSON, whatever Content-Type the client sent (or none).

Strict means: UTF-8 only (a leading byte-order mark is ignored, as RFC 8259 allows), no NaN or
Infinity, no unpaired UTF-16 surrogate escapes (the 400 names the field that holds one), numbers
that fit a float, and at most MAX_DEPTH levels of nesting. Anything else is a 400 in the
endpoint's family shape that names the problem; a form or multipart body is told it must be JSON.
"""

import json
import re

import msgspec
from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser

# Deep enough for any body the APIs take (an ingest batch nests 3 levels); shallow enough that
# nothing downstream (validation, error messages) recurses far.
MAX_DEPTH = 32
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_decode = msgspec.json.Decoder().decode


def is_json_integer(value):
    """True for a JSON integer as the body decodes: not a string, not a float (1.0 included), not a boolean
    (bool is an int subclass in Python, and true is not 1 packet)."""
    return type(value) is int


class StrictIntegerField(serializers.IntegerField):
    """A serializer field that takes a JSON integer only (is_json_integer)."""

    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data):
        if not is_json_integer(data):
            self.fail("invalid")
        return super().to_internal_value(data)


def _media_type(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def _deeper_than(value, limit):
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def _utf8_problem(raw):
    # msgspec's error counts from the start of the string it was reading; find the byte in the body.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"byte 0x{raw[exc.start]:02x} at position {exc.start} ({exc.reason})"
    return "it is not UTF-8"


def _refuse_unpaired_surrogates(raw):
    """A ValidationError naming the first field whose text holds an unpaired surrogate escape, if any."""
    try:
        value = json.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except (ValueError, RecursionError):
        return
    stack = [(value, ())]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            where = (*path, str(key))
            if (isinstance(key, str) and _SURROGATE.search(key)) or (
                isinstance(child, str) and _SURROGATE.search(child)
            ):
                detail = ["must be valid Unicode text"]
                for name in reversed(where):
                    detail = {name: detail}
                raise ValidationError(detail)
            if isinstance(child, (dict, list)):
                stack.append((child, where))


def load_json(raw, content_type=""):
    """The value of a JSON body (bytes), or a ParseError that says what is wrong with it."""
    media_type = _media_type(content_type)
    if media_type in FORM_TYPES:
        # A form is never JSON; `curl -d '{...}'` sends JSON labelled as a form, so try it first.
        try:
            value = _decode(raw.removeprefix(b"\xef\xbb\xbf"))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise ParseError(f"The body must be JSON, not a form ({media_type}).") from None
    else:
        try:
            value = _decode(raw.removeprefix(b"\xef\xbb\xbf"))
        except UnicodeDecodeError:
            raise ParseError(f"The body is not valid UTF-8: {_utf8_problem(raw)}.") from None
        except RecursionError:
            raise ParseError(f"The body nests JSON arrays or objects more than {MAX_DEPTH} levels deep.") from None
        except msgspec.DecodeError as exc:
            if _SURROGATE_ESCAPE.search(raw) is not None:
                _refuse_unpaired_surrogates(raw)
            shown = f" (sent as {media_type})" if media_type and "json" not in media_type else ""
            raise ParseError(f"The body is not valid JSON{shown}: {exc}.") from None
        except msgspec.ValidationError as exc:  # a number beyond the range of a float
            raise ParseError(f"The body is not valid JSON: {exc}.") from None
    if isinstance(value, (dict, list)) and _deeper_than(value, MAX_DEPTH):
        raise ParseError(f"The body nests JSON arrays or objects more than {MAX_DEPTH} levels deep.")
    return value


def read_body(stream, request, limit, *, noun="it"):
    """At most `limit` bytes of a request body; a PayloadTooLarge (413) beyond that."""
    # Imported here: exceptions imports rest_framework.views, whose APIView loads this module.
    from vpnmonitor.api.exceptions import PayloadTooLarge

    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
    except ValueError:
        length = 0
    if length > limit:
        raise PayloadTooLarge(f"The body is {length} bytes; {noun} may be at most {limit} bytes.")
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is over {limit} bytes; {noun} may be at most {limit} bytes.")
    return raw


class JSONBodyParser(BaseParser):
    """The project's only body parser (DEFAULT_PARSER_CLASSES): strict JSON, see the module docstring."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        raw = read_body(stream, request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return load_json(raw, request.content_type if request is not None else media_type)


class JSONBodyNegotiation(DefaultContentNegotiation):
    """A body with no Content-Type, text/plain or any other type goes to the view's first parser.

    Clients such as Ella Core's send JSON without a Content-Type, and Django's development server
    labels such bodies text/plain; the parser then decides, and a body that is not JSON is a 400
    that says so rather than a 415.
    """

    def select_parser(self, request, parsers):
        return super().select_parser(request, parsers) or (parsers[0] if parsers else None)
