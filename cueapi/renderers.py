"""The API's JSON renderer (DRF's, with orjson doing the encoding) and the choice of it.

Encoding a list of 50 executions with the standard library's encoder was about 5 % of the
API's CPU; orjson does it several times faster. The bytes are DRF's (compact, UTF-8,
U+2028/U+2029 escaped, datetimes and other non-JSON types through DRF's encoder) with one
difference: a float with a one-digit negative exponent is written `8.9e-7` where Python writes
`8.9e-07` (the same number to any JSON parser). Whatever orjson refuses
(an integer beyond 64 bits, a non-string key, a lone surrogate, very deep nesting) and an
indented rendering (`Accept: application/json; indent=4`) go to DRF's renderer unchanged.
"""

import orjson
from rest_framework import renderers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.utils.encoders import JSONEncoder

_encode_other = JSONEncoder().default
# Datetimes through DRF's encoder too: its format (milliseconds, `Z`) is not orjson's.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.get_indent(accepted_media_type, renderer_context or {}) is None:
            try:
                rendered = orjson.dumps(data, default=_encode_other, option=_OPTIONS)
            except (orjson.JSONEncodeError, TypeError, ValueError):
                pass
            else:
                # As DRF: JSON that is also valid JavaScript.
                return rendered.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return super().render(data, accepted_media_type, renderer_context)


# What clients send (requests: `*/*`; http.client, curl without -H: none; the SDKs: JSON).
_PLAIN_ACCEPTS = {None, "*/*", "application/json"}


class JSONContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with the answer for the Accept headers clients send worked out once:
    parsing the header into media types was about 3 % of a request's CPU. Anything else (a
    `?format=`, an Accept list, parameters) goes through DRF's rules."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if (renderers and renderers[0].media_type == "application/json"
                and request.META.get("HTTP_ACCEPT") in _PLAIN_ACCEPTS and not format_suffix
                and self.settings.URL_FORMAT_OVERRIDE not in request.query_params):
            return renderers[0], "application/json"
        return super().select_renderer(request, renderers, format_suffix)
