"""Request body parsing with the reference's content-type rules (SERVER.md §1.1).

JSON is parsed when Content-Type is absent, `application/json` or `application/<x>+json`;
invalid JSON is 400 `invalid_json`, and so is JSON that nothing downstream can hold: NaN or
Infinity, a number beyond a float's range (1e400), a lone surrogate escape, nesting deeper
than MAX_DEPTH (each used to fail later, in a database write or a recursive check, as a 500).
Any other content type (curl's default form type, say) cannot hold a JSON object, so it fails
validation with 422, as FastAPI does, with the reference's message plus how to fix it (curl -d
sends a form unless told otherwise).
"""

import json
import math

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from cueapi.errors import AppError, RequestValidationError
from cueapi.validation import NOT_A_DICT

NOT_JSON_CONTENT_TYPE = f"{NOT_A_DICT}; send a JSON body with the header Content-Type: application/json"


def is_json_media_type(media_type):
    base = (media_type or "").split(";", 1)[0].strip().lower()
    if not base:
        return True
    main, _, sub = base.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


MAX_DEPTH = 100


def _not_json(reason):
    return AppError("invalid_json", f"Request body is not valid JSON: {reason}", 400)


def _no_constants(name):
    raise _not_json(f"{name} is not a JSON number")


def _finite_float(text):
    value = float(text)
    if math.isinf(value):
        raise _not_json(f"the number {text[:40]} is out of range")
    return value


def _check_storable(value):
    """Walk the parsed body (without recursion): no lone surrogates, at most MAX_DEPTH deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise _not_json(f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _not_json("it contains a lone surrogate (an unpaired \\uD800-\\uDFFF escape)") from None


class JSONBodyParser(BaseParser):
    media_type = "*/*"  # we decide below, so that no request ever gets DRF's 415

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        if not is_json_media_type(media_type):
            raise RequestValidationError([("body", NOT_JSON_CONTENT_TYPE)])
        try:
            data = json.loads(raw, parse_constant=_no_constants, parse_float=_finite_float)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ParseError("invalid_json") from None
        _check_storable(data)
        return data
