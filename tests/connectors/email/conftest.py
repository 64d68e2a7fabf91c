"""Fixtures for the SMTP connector: a certificate authority made here, sinks, and connectors aimed at them."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connectors.email.connector import SendEmail, SmtpConnector
from connectors.email.sandbox import SmtpSandbox, start_sandbox
from connectors.email.settings import SmtpSettings
from hub.templating import sample_context

FIXED_NOW = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Certificates:
    ca_file: Path          # what the client trusts
    cert_file: Path        # the server's certificate (127.0.0.1, localhost), signed by the CA
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1, valid for a day."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name("churnhub test CA")).issuer_name(_name("churnhub test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_cert = (
        x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_cert.subject)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths.key_file.write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return paths


@pytest.fixture
def sink() -> Iterator[SmtpSandbox]:
    """A plain SMTP sink (security: none)."""
    sandbox = start_sandbox()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def fixed_now() -> datetime:
    return FIXED_NOW


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_connector(sleeps: list[float]) -> Callable[..., SmtpConnector]:
    """`make_connector(sandbox, **setting_overrides)`: a connector aimed at the sandbox, time frozen."""
    def build(sandbox: SmtpSandbox, **overrides: Any) -> SmtpConnector:
        settings = SmtpSettings(**{**sandbox.settings(), **overrides})
        return SmtpConnector(settings, now=lambda: FIXED_NOW, sleep=sleeps.append, clock=lambda: 0.0)
    return build


@pytest.fixture
def make_send() -> Callable[..., SendEmail]:
    """`make_send(**overrides)`: a `send` of the reengagement email to Dana with the sample context."""
    def build(**overrides: Any) -> SendEmail:
        values: dict[str, Any] = {"template": "reengagement", "to": "dana@northwind.example",
                                  "to_name": "Dana Whitfield", "context": sample_context()}
        return SendEmail(**{**values, **overrides})
    return build
