"""Every address form that is not globally routable is refused, at creation and at delivery,
including IPv6 forms that carry an IPv4 address. Literal IPs in URLs go through the real
resolver, so nothing is mocked; nothing here connects anywhere."""

from django.test import SimpleTestCase, override_settings

from cueapi.testing import BaseTestCase, cue_body
from cueapi.urlsafety import PRIVATE_URLS_HINT, UnsafeURL, resolve_safe_address, validate_url
from cues.models import Cue
from executions.delivery import send_webhook

# (form, address) — none of these may be called while private URLs are disallowed.
NOT_GLOBAL = [
    ("NAT64 to loopback", "64:ff9b::7f00:1"),
    ("NAT64 to private", "64:ff9b::a00:1"),
    ("NAT64 to metadata", "64:ff9b::a9fe:a9fe"),
    ("local-use NAT64", "64:ff9b:1::808:808"),
    ("local-use NAT64 to loopback", "64:ff9b:1::7f00:1"),
    ("6to4 of loopback", "2002:7f00:1::1"),
    ("6to4 of a public address", "2002:808:808::1"),
    ("Teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
    ("Teredo, other", "2001::1"),
    ("IPv4-compatible loopback", "::127.0.0.1"),
    ("IPv4-compatible private", "::10.0.0.1"),
    ("IPv4-mapped loopback", "::ffff:127.0.0.1"),
    ("IPv4 multicast", "224.0.0.1"),
    ("IPv4 multicast, SSDP", "239.255.255.250"),
    ("IPv6 multicast, link", "ff02::1"),
    ("IPv6 multicast, global", "ff0e::1"),
    ("reserved 240.0.0.0/4", "240.0.0.1"),
    ("broadcast", "255.255.255.255"),
    ("TEST-NET-1", "192.0.2.1"),
    ("TEST-NET-2", "198.51.100.1"),
    ("TEST-NET-3", "203.0.113.1"),
    ("IETF protocol assignments", "192.0.0.1"),
    ("IETF PCP anycast", "192.0.0.9"),
    ("IETF TURN anycast", "192.0.0.10"),
    ("IPv6 documentation", "2001:db8::1"),
    ("IPv6 documentation, new", "3fff::1"),
    ("site-local", "fec0::1"),
    ("carrier-grade NAT", "100.64.0.1"),
]
# Refused even with CUEAPI_ALLOW_PRIVATE_URLS=true, in every form that reaches them.
METADATA = [
    ("AWS/GCP/Azure", "169.254.169.254"),
    ("AWS over IPv6", "fd00:ec2::254"),
    ("Alibaba", "100.100.100.200"),
    ("IPv4-mapped", "::ffff:169.254.169.254"),
    ("IPv4-compatible", "::169.254.169.254"),
    ("NAT64", "64:ff9b::a9fe:a9fe"),
    ("local-use NAT64", "64:ff9b:1::a9fe:a9fe"),
    ("6to4", "2002:a9fe:a9fe::1"),
    ("Teredo client", "2001:0:4136:e378:8000:63bf:5601:5601"),
]
PUBLIC = ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"]


def url_of(address):
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}/hook"


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False)
class AddressFormTests(SimpleTestCase):
    def test_not_global_forms_are_refused_when_saved(self):
        for form, address in NOT_GLOBAL:
            with self.subTest(form, address=address):
                with self.assertRaisesMessage(UnsafeURL, "Callback URL resolves to blocked address range"):
                    validate_url(url_of(address))

    def test_not_global_forms_are_refused_at_delivery(self):
        for form, address in NOT_GLOBAL:
            with self.subTest(form, address=address):
                with self.assertRaisesMessage(UnsafeURL, "Callback URL resolved to blocked IP"):
                    resolve_safe_address(url_of(address))
                result = send_webhook(url=url_of(address), method="POST", headers={}, body=b"{}")
                self.assertEqual((result.delivered, result.error), (False, "Callback URL resolved to blocked IP"))

    def test_public_addresses_are_allowed(self):
        for address in PUBLIC:
            with self.subTest(address):
                validate_url(url_of(address))
                self.assertEqual(resolve_safe_address(url_of(address))[2], address)

    @override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
    def test_metadata_is_refused_even_when_private_urls_are_allowed(self):
        for form, address in METADATA:
            with self.subTest(form, address=address):
                with self.assertRaises(UnsafeURL):
                    validate_url(url_of(address))
                result = send_webhook(url=url_of(address), method="POST", headers={}, body=b"{}")
                self.assertEqual((result.delivered, result.error), (False, "Callback URL resolved to blocked IP"))

    @override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
    def test_private_forms_are_allowed_when_private_urls_are(self):
        for address in ("127.0.0.1", "10.0.0.1", "::1", "64:ff9b::7f00:1", "::ffff:10.0.0.1", "fd00::1"):
            with self.subTest(address):
                validate_url(url_of(address))


class CreateWithBlockedAddressTests(BaseTestCase):
    def test_every_form_is_a_400_and_creates_nothing(self):
        for form, address in NOT_GLOBAL + METADATA:
            # Allowing private URLs would let the non-global ones through, never metadata: the
            # message names the setting only where it helps.
            hint = "" if (form, address) in METADATA or "metadata" in form else PRIVATE_URLS_HINT
            with self.subTest(form, address=address):
                r = self.post("/v1/cues", cue_body(callback={"url": url_of(address)}))
                self.assertError(r, 400, "invalid_callback_url", "Callback URL resolves to blocked address range" + hint)
        self.assertFalse(Cue.objects.exists())

    @override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
    def test_metadata_is_a_400_even_when_private_urls_are_allowed(self):
        for form, address in METADATA:
            with self.subTest(form, address=address):
                r = self.post("/v1/cues", cue_body(callback={"url": url_of(address)}))
                self.assertError(r, 400, "invalid_callback_url", "Callback URL resolves to blocked address range")
        self.assertEqual(self.post("/v1/cues", cue_body(callback={"url": url_of("127.0.0.1")})).status_code, 201)

    def test_a_public_address_is_accepted(self):
        r = self.post("/v1/cues", cue_body(callback={"url": url_of("64:ff9b::5db8:d822")}))
        self.assertEqual(r.status_code, 201, r.content)
