"""Request validation with the reference's wording (Pydantic v2 texts, SERVER.md §1.3 B).

The real clients map status codes, not texts, but people read these messages: a field that
fails says what the reference would say. DRF serializers do the validating; the fields
below are DRF fields with Pydantic's rules (a string must be a string, no trimming) and
messages, and `errors_from_drf` (cueapi/errors.py) flattens DRF's nested errors into
(location, message) pairs.
"""

import datetime
import re
import threading
from collections.abc import Mapping

from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from pydantic import AwareDatetime, HttpUrl, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.exceptions import ValidationError as DRFValidationError

from cueapi.errors import AppError, RequestValidationError, errors_from_drf

NOT_A_DICT = "Input should be a valid dictionary or object to extract fields from"
EXTRA_FORBIDDEN = "Extra inputs are not permitted"


class Str(serializers.CharField):
    default_error_messages = {
        "required": "Field required",
        "null": "Input should be a valid string",
        "invalid": "Input should be a valid string",
        "blank": "String should have at least 1 character",
        "max_length": "String should have at most {max_length} characters",
        "min_length": "String should have at least {min_length} characters",
        "nul": "String should not contain NUL characters",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        # DRF returns "" before checking min_length, so a minimum means blank is refused.
        kwargs.setdefault("allow_blank", not kwargs.get("min_length"))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            # PostgreSQL cannot store NUL in text: refuse it here rather than fail there.
            self.fail("nul")
        return super().to_internal_value(data)


class Int(serializers.IntegerField):
    default_error_messages = {
        "required": "Field required",
        "null": "Input should be a valid integer",
        "invalid": "Input should be a valid integer, unable to parse string as an integer",
        "max_value": "Input should be less than or equal to {max_value}",
        "min_value": "Input should be greater than or equal to {min_value}",
        "max_string_length": "Input should be a valid integer",
    }

    # Unbounded integers (list offsets) would reach the database as numbers it can't hold
    # (SQLite and PostgreSQL both stop at 64 bits) and fail there as a 500.
    INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", self.INT64_MIN)
        kwargs.setdefault("max_value", self.INT64_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictInt(Int):
    """A JSON integer only: no "60", 60.0 or true (422). The newer fields use it (`grace_seconds`,
    `delivery.max_in_flight`, a bulk replay's `limit`, the `alerts` numbers); the older ones
    keep reading numeric strings, as they always have."""

    default_error_messages = {"strict": "Input should be a valid integer"}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("strict")
        return super().to_internal_value(data)


class Bool(serializers.BooleanField):
    default_error_messages = {
        "required": "Field required",
        "null": "Input should be a valid boolean",
        "invalid": "Input should be a valid boolean, unable to interpret input",
    }


class StrictBool(Bool):
    """JSON `true` or `false` only: no "true", 1 or null. For a flag that switches what a
    request does (`upsert`), where a lenient reading could change a cue by surprise."""

    default_error_messages = {"invalid": "Input should be a valid boolean (true or false)"}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class Dict(serializers.DictField):
    default_error_messages = {
        "required": "Field required",
        "null": "Input should be a valid dictionary",
        "not_a_dict": "Input should be a valid dictionary",
    }


def contains_nul(value) -> bool:
    """Whether a NUL character is in any string of a JSON value, keys included (iterative:
    the parser allows deep nesting)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class NulFree:
    """A mixin for JSON fields stored as they come (an outcome's metadata, assertions,
    artifacts): PostgreSQL cannot store NUL in jsonb, so refuse it here (422) rather than
    fail there (500)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if contains_nul(value):
            raise serializers.ValidationError("Input should not contain NUL characters")
        return value


# RFC 9110 "token": the characters a header name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HEADER_NAME_RULE = "Header name must be an HTTP token: letters, digits and !#$%&'*+-.^_`|~ only"


def header_problem(name: str, value: str) -> str | None:
    """Why a custom HTTP header can't be sent as given, or None. Never quotes the value: it
    is often a secret (a bearer token). Used when a cue is saved and again at delivery."""
    if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
        return HEADER_NAME_RULE
    if not isinstance(value, str):
        return "Header value should be a valid string"
    if "\r" in value or "\n" in value:
        return "Header value must not contain line breaks (CR or LF)"
    if any((c < " " and c != "\t") or c == "\x7f" for c in value):
        return "Header value must not contain control characters"
    if value != value.strip():
        return "Header value must not start or end with whitespace"
    if any(c > "\xff" for c in value):
        return "Header value must be Latin-1 text; percent-encode other characters"
    return None


class HttpHeaders(Dict):
    """{name: value} custom HTTP headers, each one sendable as it is (`header_problem`);
    an error is reported at the header's name."""

    def __init__(self, **kwargs):
        super().__init__(child=Str(), **kwargs)

    def to_internal_value(self, data):
        headers = super().to_internal_value(data)
        errors = {}
        for name, value in headers.items():
            problem = header_problem(name, value)
            if problem:
                errors[name] = [problem]
        if errors:
            raise serializers.ValidationError(errors)
        return headers


class List(serializers.ListField):
    default_error_messages = {
        "required": "Field required",
        "null": "Input should be a valid list",
        "not_a_list": "Input should be a valid list",
        "empty": "List should have at least 1 item after validation, not 0",
        "min_length": "List should have at least {min_length} items after validation",
        "max_length": "List should have at most {max_length} items after validation",
    }


class JsonDict(NulFree, Dict):
    pass


class JsonList(NulFree, List):
    pass


class Choice(serializers.ChoiceField):
    """One of fixed strings; the message lists them as Pydantic's Literal does.

    `upper=True` accepts any case and returns the upper-case value (HTTP methods).
    """

    default_error_messages = {"required": "Field required", "null": "Input should be a string"}

    def __init__(self, choices, *, upper=False, **kwargs):
        self.upper = upper
        super().__init__(choices=list(choices), **kwargs)

    def to_internal_value(self, data):
        value = data.upper() if self.upper and isinstance(data, str) else data
        if not isinstance(value, str) or value not in self.choices:
            quoted = [f"'{c}'" for c in self.choices]
            listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
            raise serializers.ValidationError(f"Input should be {listed}")
        return value


class _PydanticField(serializers.Field):
    """A field validated by a Pydantic type, so it accepts and says what the reference does."""

    adapter = None
    default_error_messages = {"required": "Field required"}

    def to_internal_value(self, data):
        try:
            return self.adapter.validate_python(data)
        except PydanticValidationError as exc:
            raise serializers.ValidationError(exc.errors()[0]["msg"]) from None

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.URI)
class Url(_PydanticField):
    """An http(s) URL, normalised as Pydantic's HttpUrl does; returned as a string."""

    adapter = TypeAdapter(HttpUrl)
    default_error_messages = {"required": "Field required", "null": "URL input should be a string or URL"}

    def to_internal_value(self, data):
        return str(super().to_internal_value(data))


# PostgreSQL takes UTC offsets up to 15:59; Pydantic up to 23:59.
MAX_STORABLE_OFFSET = datetime.timedelta(hours=15, minutes=59)


def storable(value):
    """A datetime both databases can hold: the same instant in UTC when its offset is beyond
    what PostgreSQL accepts, and a 422 when it is outside years 1-9999 in UTC (SQLite stores
    UTC, so 9999-12-31T23:00-05:00 would overflow there)."""
    try:
        in_utc = value.astimezone(datetime.timezone.utc)
    except OverflowError:
        raise serializers.ValidationError("Input should be a valid datetime, out of range in UTC") from None
    return in_utc if abs(value.utcoffset()) > MAX_STORABLE_OFFSET else value


@extend_schema_field(OpenApiTypes.DATETIME)
class DateTime(_PydanticField):
    """ISO-8601 or Unix time; a value without an offset is UTC (SERVER.md §1.5)."""

    adapter = TypeAdapter(datetime.datetime)
    default_error_messages = {"required": "Field required", "null": "Input should be a valid datetime"}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return storable(value)


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareDateTime(_PydanticField):
    """Like DateTime, but an offset is required (it is kept, not converted, unless no
    database could store it: see `storable`)."""

    adapter = TypeAdapter(AwareDatetime)
    default_error_messages = {"required": "Field required", "null": "Input should be a valid datetime"}

    def to_internal_value(self, data):
        return storable(super().to_internal_value(data))


_thread_fields = threading.local()


class InputSerializer(serializers.Serializer):
    """Base for request bodies and query strings.

    `forbid_extra = True` makes unknown keys an error (the reference does this only for
    PATCH /v1/cues/{id}); otherwise they are ignored.
    """

    forbid_extra = False
    default_error_messages = {"required": "Field required", "null": NOT_A_DICT}

    @cached_property
    def fields(self):
        """The declared fields, deep-copied once per class and thread instead of on every
        instance (DRF's default: a fifth of a cue create's CPU went to copying ~40 fields).
        The copies hold no request state, only a link to their serializer, which is moved to
        this instance; a thread validates one body at a time, so no two instances share them.
        A nested serializer keeps DRF's own copy: it lives inside its parent's cached fields."""
        if self.parent is not None:
            return super().fields
        per_thread = _thread_fields.__dict__.setdefault("by_class", {})
        fields = per_thread.get(type(self))
        if fields is None:
            fields = per_thread[type(self)] = super().fields
        for field in fields.values():
            field.parent = self
        return fields

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise DRFValidationError({"non_field_errors": [ErrorDetail(NOT_A_DICT, "invalid")]})
        errors = {}
        if self.forbid_extra:
            for key in data:
                if key not in self.fields:
                    errors[key] = [ErrorDetail(EXTRA_FORBIDDEN, "extra_forbidden")]
        try:
            value = super().to_internal_value(data)
        except DRFValidationError as exc:
            errors = {**exc.detail, **errors}
            raise DRFValidationError(errors) from None
        if errors:
            raise DRFValidationError(errors)
        return value


def validate(serializer_class, data, loc, **kwargs):
    """Run a serializer and return its validated data, or raise a 422 envelope."""
    serializer = serializer_class(data=data, **kwargs)
    if not serializer.is_valid():
        raise RequestValidationError(errors_from_drf(serializer.errors, loc))
    return serializer.validated_data


def validate_body(serializer_class, request, *, required=True, **kwargs):
    """Validate a JSON body. An empty body is `{}`, or 422 `body: Field required` if required."""
    if _empty_stream(request):
        if required:
            raise RequestValidationError([("body", "Field required")])
        data = {}
    else:
        data = request.data
    return validate(serializer_class, data, "body", **kwargs)


def validate_query(serializer_class, request, **kwargs):
    # Empty query values mean "not given" (the reference treats `?status=` as no filter).
    data = {k: v for k, v in request.query_params.items() if v != ""}
    return validate(serializer_class, data, "query", **kwargs)


def require_destructive_confirmation(request):
    """400 `confirmation_required` unless the request carries `X-Confirm-Destructive: true`
    (exactly that value): key and secret regeneration, bulk delete."""
    if request.headers.get("X-Confirm-Destructive") != "true":
        raise AppError(
            "confirmation_required",
            "This action is destructive. Set X-Confirm-Destructive: true header to confirm.",
            400,
        )


def _empty_stream(request):
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) == 0
    except ValueError:
        return True
