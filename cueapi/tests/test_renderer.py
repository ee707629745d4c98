"""The API's JSON renderer (cueapi/renderers.py) writes DRF's bytes, faster."""

import json
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from django.test import SimpleTestCase
from rest_framework.renderers import JSONRenderer as DrfJSONRenderer

from cueapi.renderers import JSONRenderer
from cues.models import Cue

SAMPLES = [
    {},
    [],
    {"executions": [{"execution_id": str(uuid.uuid4()), "n": i, "ok": i % 2 == 0, "none": None,
                     "payload": {"task": "t", "nested": {"list": [1, 2.5, "x"], "deep": [[[]]]}}}
                    for i in range(50)]},
    {"text": "é ü 日本 🎉 \x00\x1f \" \\ / \n\t\r\b\f <script>&amp;", "sep": "a\u2028b\u2029c"},
    {"when": datetime(2026, 12, 1, 16, 39, 21, 747883, tzinfo=timezone.utc),
     "naive": datetime(2026, 12, 1, 16, 39, 21), "day": date(2026, 12, 1), "span": timedelta(seconds=90),
     "id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "money": Decimal("1.10"),
     "choice": Cue.Status.PAUSED, "tuple": (1, 2), "big": 2**63 - 1, "negative": -2**63},
    {"floats": [0.0, -0.0, 1.0, 0.1, 100.5, 123456.789, 1e15, 3.141592653589793]},
    "just a string",
    12,
]


class RendererTests(SimpleTestCase):
    def render_both(self, data, accepted=None):
        return JSONRenderer().render(data, accepted), DrfJSONRenderer().render(data, accepted)

    def test_the_same_bytes_as_drf(self):
        for data in SAMPLES:
            ours, drf = self.render_both(data)
            self.assertEqual(ours, drf, data)

    def test_what_orjson_refuses_is_drfs_rendering(self):
        for data in ({"huge": 2**70}, {1: "int key"}, {"deep": json.loads("[" * 300 + "]" * 300)}):
            ours, drf = self.render_both(data)
            self.assertEqual(ours, drf)
        with self.assertRaises(UnicodeEncodeError):  # as DRF's does
            JSONRenderer().render({"lone": "\ud800"})

    def test_an_indented_rendering_is_drfs(self):
        ours, drf = self.render_both({"a": [1, {"b": 2}]}, "application/json; indent=4")
        self.assertEqual(ours, drf)
        self.assertIn(b"\n    ", ours)

    def test_no_data_is_no_body(self):
        self.assertEqual(JSONRenderer().render(None), b"")

    def test_a_small_floats_exponent_loses_its_leading_zero_not_its_value(self):
        data = {"small": 8.906716619797224e-07, "large": 1e16, "list": [1e-300, 5e-324, 1.7976931348623157e308]}
        ours, drf = self.render_both(data)
        self.assertEqual(json.loads(ours), json.loads(drf))
        self.assertEqual(ours, b'{"small":8.906716619797224e-7,"large":1e+16,"list":[1e-300,5e-324,1.7976931348623157e+308]}')


class NegotiationTests(SimpleTestCase):
    ACCEPTS = [None, "*/*", "application/json", "text/html", "application/json; indent=2", "application/*",
               "text/html, */*;q=0.1", "application/xml", ""]

    def choose(self, negotiation, accept, query=""):
        from rest_framework.request import Request
        from rest_framework.test import APIRequestFactory

        headers = {} if accept is None else {"HTTP_ACCEPT": accept}
        request = Request(APIRequestFactory().get("/v1/cues" + query, **headers))
        try:
            renderer, media_type = negotiation.select_renderer(request, [JSONRenderer()])
        except Exception as exc:  # noqa: BLE001 - the refusal itself is compared
            return type(exc).__name__
        return type(renderer).__name__, media_type

    def test_the_same_choice_as_drfs(self):
        from rest_framework.negotiation import DefaultContentNegotiation

        from cueapi.renderers import JSONContentNegotiation

        for accept in self.ACCEPTS:
            for query in ("", "?format=json", "?format=xml"):
                ours = self.choose(JSONContentNegotiation(), accept, query)
                self.assertEqual(ours, self.choose(DefaultContentNegotiation(), accept, query), (accept, query))
        self.assertEqual(self.choose(JSONContentNegotiation(), "text/html"), "NotAcceptable")
