"""Normalising domains, email domains and company names; the free-mail list."""

from __future__ import annotations

import pytest

from hub.domains import FREE_MAIL_DOMAINS, FreeMail, email_domain, normalise_company_name, normalise_domain


@pytest.mark.parametrize("raw, expected", [
    ("acme.com", "acme.com"),
    ("ACME.COM", "acme.com"),
    ("www.acme.com", "acme.com"),
    ("https://www.Acme.com/pricing?utm=x#top", "acme.com"),
    ("http://acme.com:8080/", "acme.com"),
    ("//acme.com/path", "acme.com"),
    ("acme.com.", "acme.com"),
    ("  WWW.Acme.Co.UK/ ", "acme.co.uk"),
    ("https://user:pw@portal.acme.io/login", "portal.acme.io"),
    ("*.acme.com", "acme.com"),
    ("Bücher.de", "xn--bcher-kva.de"),
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("https://www.MÜNCHEN.de/", "xn--mnchen-3ya.de"),
    ("www.com", "www.com"),          # stripping www. must leave a domain
    ("acme_labs.com", "acme_labs.com"),
])
def test_normalise_domain(raw: str, expected: str) -> None:
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize("raw", ["", "acme", "N/A", "localhost", "192.168.1.20", "http://10.0.0.1:80/", None, 42,
                                 "a" * 64 + ".com"])
def test_not_a_domain(raw: object) -> None:
    assert normalise_domain(raw) is None


def test_idna_and_unicode_forms_match() -> None:
    assert normalise_domain("bücher.de") == normalise_domain("BÜCHER.DE") == normalise_domain("xn--bcher-kva.de")


@pytest.mark.parametrize("email, expected", [
    ("Jane@Acme.com", "acme.com"),
    (" ops@sales.acme.com ", "sales.acme.com"),
    ("weird@name@acme.io", "acme.io"),
    ("no-at-sign.acme.com", None),
    (None, None),
])
def test_email_domain(email: object, expected: str | None) -> None:
    assert email_domain(email) == expected


@pytest.mark.parametrize("domain", [
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com",
    "live.de", "yahoo.com", "yahoo.co.jp", "yahoo.fr", "icloud.com", "me.com", "aol.com", "proton.me",
    "protonmail.com", "gmx.de", "gmx.net", "gmx.at", "web.de", "mail.ru", "yandex.ru", "yandex.com.tr",
    "qq.com", "163.com", "comcast.net", "verizon.net", "att.net", "btinternet.com", "orange.fr", "free.fr",
    "t-online.de", "users.free.fr", "mail.yahoo.com",
])
def test_free_mail(domain: str) -> None:
    assert FreeMail().is_free(domain)


@pytest.mark.parametrize("domain", ["acme.com", "orange.com", "yahoo-inc.example.org.uk", "liveperson.com",
                                    "gmailer.io", "my-gmx.de", "hotmail.acme.com"])
def test_company_domains_are_not_free_mail(domain: str) -> None:
    assert not FreeMail().is_free(domain)


def test_free_mail_list_is_big_and_normalised_and_extendable() -> None:
    assert len(FREE_MAIL_DOMAINS) >= 100
    assert all(normalise_domain(d) == d for d in FREE_MAIL_DOMAINS)
    extended = FreeMail(["Mail.Example-ISP.net", "https://isp.test/"])
    assert extended.is_free("mail.example-isp.net") and extended.is_free("isp.test")
    assert not FreeMail().is_free("mail.example-isp.net")


@pytest.mark.parametrize("name, expected", [
    ("Acme", "acme"),
    ("ACME, Inc.", "acme"),
    ("Acme Inc", "acme"),
    ("The Acme Company, Inc.", "acme"),
    ("Acme LLC", "acme"),
    ("Acme L.L.C.", "acme"),
    ("Müller GmbH & Co. KG", "muller"),
    ("Acme Widgets Ltd", "acme widgets"),
    ("I.B.M.", "ibm"),
    ("Ben & Jerry's", "ben and jerrys"),
    ("Company Inc", "company"),       # never stripped to nothing
    ("  ", None),
    (None, None),
])
def test_normalise_company_name(name: object, expected: str | None) -> None:
    assert normalise_company_name(name) == expected
