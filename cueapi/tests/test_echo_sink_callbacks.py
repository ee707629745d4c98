"""The server's own echo sink (`{BASE_URL}/v1/echo/<token>`, used by `cueapi quickstart`) is a
valid callback even with private URLs off; a refused private callback says how to allow it."""

from django.test import SimpleTestCase, override_settings

from cueapi.testing import BaseTestCase
from cueapi.urlsafety import UnsafeURL, resolve_safe_address, validate_url
from cues.models import Cue

TOKEN = "qs-0123456789abcdef"
HINT = ("; to call handlers on localhost or a private network (local development), "
        "set CUEAPI_ALLOW_PRIVATE_URLS=true")


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False, BASE_URL="http://localhost:8000")
class EchoSinkUrlTests(SimpleTestCase):
    def test_the_own_echo_sink_is_allowed_on_loopback(self):
        for url in (f"http://localhost:8000/v1/echo/{TOKEN}", f"http://127.0.0.1:8000/v1/echo/{TOKEN}",
                    f"http://[::1]:8000/v1/echo/{TOKEN}", f"http://LOCALHOST:8000/v1/echo/{TOKEN}"):
            with self.subTest(url):
                validate_url(url)
        self.assertEqual(resolve_safe_address(f"http://127.0.0.1:8000/v1/echo/{TOKEN}"),
                         ("127.0.0.1", 8000, "127.0.0.1"))

    def test_anything_else_on_loopback_is_refused(self):
        for url in (
            f"http://127.0.0.1:8001/v1/echo/{TOKEN}",  # another port: another service
            f"https://127.0.0.1:8000/v1/echo/{TOKEN}",
            "http://127.0.0.1:8000/admin/",
            f"http://127.0.0.1:8000/v1/echo/{TOKEN}/../../admin/",
            "http://127.0.0.1:8000/v1/echo/../admin",
            "http://127.0.0.1:8000/v1/echo/%2e%2e",
            f"http://127.0.0.1:8000/v1/echo/{TOKEN}?next=/admin/",
            f"http://10.0.0.1:8000/v1/echo/{TOKEN}",
        ):
            with self.subTest(url):
                with self.assertRaisesMessage(UnsafeURL, "Callback URL resolves to blocked address range" + HINT):
                    validate_url(url)
                with self.assertRaises(UnsafeURL):
                    resolve_safe_address(url)

    @override_settings(BASE_URL="https://cue.example.org/scheduler/")
    def test_base_url_with_a_path(self):
        validate_url(f"https://cue.example.org/scheduler/v1/echo/{TOKEN}")  # cue.example.org: no DNS needed
        with self.assertRaises(UnsafeURL):
            validate_url(f"https://cue.example.org/v1/echo/{TOKEN}")

    def test_refusals_name_the_setting(self):
        with self.assertRaisesMessage(UnsafeURL, "Blocked hostname: localhost" + HINT):
            validate_url("http://localhost:3000/hook")
        # Metadata stays refused with the setting on, so no hint there.
        with self.assertRaises(UnsafeURL) as ctx:
            validate_url("http://169.254.169.254/latest/meta-data/")
        self.assertEqual(str(ctx.exception), "Callback URL resolves to blocked address range")


@override_settings(BASE_URL="http://127.0.0.1:8000")
class EchoSinkCueTests(BaseTestCase):
    def test_a_quickstart_cue_is_created_with_private_urls_off(self):
        r = self.post("/v1/cues", {"name": "quickstart-test", "schedule": {"type": "once", "at": "2099-01-01T00:00:00Z"},
                                   "callback": {"url": f"http://127.0.0.1:8000/v1/echo/{TOKEN}"}})
        self.assertEqual(r.status_code, 201, r.content)

    def test_a_local_handler_is_refused_with_the_setting_named(self):
        r = self.post("/v1/cues", {"name": "local", "schedule": {"type": "once", "at": "2099-01-01T00:00:00Z"},
                                   "callback": {"url": "http://127.0.0.1:3000/hook"}})
        self.assertError(r, 400, "invalid_callback_url", "Callback URL resolves to blocked address range" + HINT)
        self.assertFalse(Cue.objects.exists())
