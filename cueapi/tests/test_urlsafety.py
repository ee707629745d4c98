from unittest import mock

from django.test import SimpleTestCase, override_settings

from cueapi.urlsafety import PRIVATE_URLS_HINT, UnsafeURL, resolve_safe_address, validate_url


def resolving_to(*addresses):
    return mock.patch("cueapi.urlsafety.resolve", return_value=list(addresses))


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False)
class ValidateUrlTests(SimpleTestCase):
    def assertRefused(self, url, message):
        with self.assertRaises(UnsafeURL) as ctx:
            validate_url(url)
        self.assertEqual(str(ctx.exception), message)

    def test_public_address_is_allowed(self):
        with resolving_to("93.184.216.34"):
            validate_url("https://example.com/hook")

    def test_refusals(self):
        self.assertRefused("http://[::1", "Invalid URL format")
        self.assertRefused("ftp://example.com/", "URL must use http:// or https://")
        self.assertRefused("https://user:pw@example.com/", "Credentials in callback URLs are not allowed")
        self.assertRefused("https://user@example.com/", "Credentials in callback URLs are not allowed")
        self.assertRefused("https:///path", "URL must have a hostname")
        self.assertRefused("https://LOCALHOST/", "Blocked hostname: localhost" + PRIVATE_URLS_HINT)
        self.assertRefused("http://metadata.google.internal/", "Blocked hostname: metadata.google.internal")

    def test_private_ranges(self):
        for address in ("127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254",
                        "100.64.0.1", "198.18.0.1", "0.0.0.0", "::1", "fd00::1", "fe80::1",
                        "::ffff:127.0.0.1"):
            # Link-local and metadata addresses stay refused whatever the setting: no hint.
            hint = "" if address in ("169.254.169.254", "fe80::1") else PRIVATE_URLS_HINT
            with self.subTest(address), resolving_to("93.184.216.34", address):
                self.assertRefused("https://example.com/", "Callback URL resolves to blocked address range" + hint)

    def test_unresolvable(self):
        with mock.patch("cueapi.urlsafety.resolve", side_effect=OSError("nope")):
            self.assertRefused("https://no-such-host.invalid/", "Cannot resolve hostname: no-such-host.invalid")

    @override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
    def test_private_allowed_by_setting_but_never_link_local(self):
        validate_url("http://127.0.0.1:8000/hook")
        validate_url("http://localhost:8000/hook")
        with resolving_to("169.254.169.254"):
            self.assertRefused("http://example.com/", "Callback URL resolves to blocked address range")
        self.assertRefused("http://metadata.google.internal/", "Blocked hostname: metadata.google.internal")


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False)
class ResolveSafeAddressTests(SimpleTestCase):
    def test_it_returns_the_checked_address(self):
        with resolving_to("93.184.216.34"):
            self.assertEqual(resolve_safe_address("https://example.com:8443/x"), ("example.com", 8443, "93.184.216.34"))

    def test_it_refuses_with_one_message(self):
        with resolving_to("10.0.0.1"):
            with self.assertRaisesMessage(UnsafeURL, "Callback URL resolved to blocked IP"):
                resolve_safe_address("https://example.com/")
