"""HTTPS deliveries: the certificate is verified against the callback's host name while the
connection goes to the address that was checked (executions/delivery.py). Real TLS receivers
on 127.0.0.1 with certificates made here."""

import datetime
import http.server
import ipaddress
import ssl
import tempfile
import threading
from pathlib import Path
from unittest import mock

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import SimpleTestCase, override_settings

from executions.delivery import send_webhook
from tests.receiver import SHUTDOWN_POLL

TLS_FAILED = "TLS connection to webhook endpoint failed (is its certificate valid?)"


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) files of a self-signed certificate for `name` and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TlsReceiver:
    """An HTTPS server on 127.0.0.1 answering 200 "ok", recording the Host of each request."""

    def __init__(self, cert_file: Path, key_file: Path):
        self.hosts = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.hosts.append(self.headers["Host"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs=SHUTDOWN_POLL, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
class TlsDeliveryTests(SimpleTestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.cert_file, key_file = self_signed(Path(directory.name), "hooks.example")
        self.receiver = self.enterContext(TlsReceiver(self.cert_file, key_file))

    def send(self, host):
        # Every name resolves to the receiver: the connection goes to the checked address.
        with mock.patch("cueapi.urlsafety.resolve", return_value=["127.0.0.1"]):
            return send_webhook(url=f"https://{host}:{self.receiver.port}/hook", method="POST", headers={},
                                body=b"{}", timeout=5)

    def test_a_certificate_no_trusted_authority_signed_is_refused(self):
        result = self.send("hooks.example")
        self.assertEqual((result.delivered, result.error), (False, TLS_FAILED))
        self.assertEqual(self.receiver.hosts, [])

    def test_a_trusted_certificate_must_name_the_callbacks_host(self):
        with mock.patch("requests.utils.DEFAULT_CA_BUNDLE_PATH", str(self.cert_file)):
            delivered = self.send("hooks.example")
            wrong_name = self.send("other.example")
        self.assertTrue(delivered.delivered, delivered.error)
        self.assertEqual((wrong_name.delivered, wrong_name.error), (False, TLS_FAILED))
        self.assertEqual(self.receiver.hosts, [f"hooks.example:{self.receiver.port}"])
