"""Normalising the keys identity resolution matches on: domains, email domains, company names.

    normalise_domain("https://www.Acme.COM:443/pricing")  -> "acme.com"
    normalise_domain("Bücher.de.")                        -> "xn--bcher-kva.de"
    email_domain("Jane@Sales.Acme.com")                   -> "sales.acme.com"
    FreeMail().is_free("hotmail.co.uk")                   -> True
    normalise_company_name("The ACME Company, Inc.")      -> "acme"

A free-mail or ISP domain says nothing about which company a person works for, so it is never
used to match records. The list below is maintained by hand: exact domains (a subdomain of one
counts too) and brands whose every country domain is free mail (`yahoo.fr`, `gmx.at`, ...).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import idna

FREE_MAIL_DOMAINS = frozenset("""
    gmail.com googlemail.com
    outlook.com hotmail.com live.com msn.com passport.com windowslive.com
    yahoo.com ymail.com rocketmail.com
    icloud.com me.com mac.com
    aol.com aim.com love.com games.com wow.com
    proton.me protonmail.com protonmail.ch pm.me
    tutanota.com tutanota.de tutamail.com tuta.io tuta.com
    fastmail.com fastmail.fm hushmail.com mailfence.com runbox.com posteo.de posteo.net mailbox.org
    zohomail.com zohomail.eu
    mail.com email.com usa.com post.com consultant.com myself.com europe.com engineer.com
    gmx.com gmx.net gmx.de gmx.at gmx.ch web.de freenet.de t-online.de arcor.de
    mail.ru bk.ru inbox.ru list.ru internet.ru yandex.ru yandex.com ya.ru rambler.ru
    qq.com foxmail.com 163.com 126.com yeah.net sina.com sina.cn sohu.com aliyun.com 139.com 189.cn
    naver.com hanmail.net daum.net kakao.com nate.com
    rediffmail.com
    comcast.net xfinity.com verizon.net att.net sbcglobal.net bellsouth.net pacbell.net cox.net
    charter.net spectrum.net earthlink.net mindspring.com optonline.net optimum.net frontier.com
    frontiernet.net windstream.net centurylink.net q.com roadrunner.com rr.com twc.com juno.com
    netzero.net prodigy.net ameritech.net
    btinternet.com btopenworld.com sky.com virginmedia.com ntlworld.com blueyonder.co.uk
    talktalk.net tiscali.co.uk plus.net
    orange.fr wanadoo.fr free.fr sfr.fr neuf.fr laposte.net bbox.fr club-internet.fr
    libero.it virgilio.it tiscali.it alice.it tin.it fastwebnet.it
    telenet.be skynet.be ziggo.nl kpnmail.nl planet.nl home.nl hetnet.nl xs4all.nl chello.nl
    bluewin.ch telia.com online.no
    shaw.ca rogers.com sympatico.ca videotron.ca telus.net bell.net cogeco.ca
    bigpond.com bigpond.net.au optusnet.com.au iinet.net.au tpg.com.au xtra.co.nz
    uol.com.br bol.com.br terra.com.br ig.com.br
    seznam.cz centrum.cz wp.pl o2.pl onet.pl interia.pl
    mailinator.com guerrillamail.com yopmail.com 10minutemail.com temp-mail.org trashmail.com
    example.com example.org example.net
""".split())

# Brands whose domain under any country (or com/net) is free mail: yahoo.co.uk, hotmail.fr, gmx.at.
FREE_MAIL_BRANDS = frozenset({"hotmail", "outlook", "live", "yahoo", "gmx", "yandex", "aol", "windowslive"})
_COUNTRY_SUFFIX = re.compile(r"^(?:com|net|org|[a-z]{2}|(?:co|com|net|org)\.[a-z]{2})$")

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://|^//", re.IGNORECASE)
_PORT = re.compile(r":\d*$")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def normalise_domain(value: object) -> str | None:
    """A website, host name, URL or email address -> its lower-case ASCII (IDNA) domain, or None.

    Scheme, user info, `www.`, port, path, query, trailing dot and case are stripped; internationalised
    names become their `xn--` form, so "bücher.de" and "xn--bcher-kva.de" match. Anything that is not
    a plausible public host name (no dot, an IP address, spaces) gives None.
    """
    return _normalise_host(value) if isinstance(value, str) else None


@lru_cache(maxsize=1 << 16)
def _normalise_host(value: str) -> str | None:
    host = _SCHEME.sub("", value.strip())
    host = re.split(r"[/?#\s]", host, maxsplit=1)[0]
    host = host.rpartition("@")[2]
    host = _PORT.sub("", host).strip(".")
    if host.startswith("*."):
        host = host[2:]
    host = _to_ascii(host)
    if host is None:
        return None
    if host.startswith("www.") and host.count(".") >= 2:
        host = host[4:]
    labels = host.split(".")
    if len(labels) < 2 or len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None  # an IPv4 address, not a company's domain
    return host


def _to_ascii(host: str) -> str | None:
    if not host:
        return None
    if host.isascii():
        return host.lower()  # already ASCII (plain or xn--): the checks in normalise_domain suffice
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:  # idna.IDNAError and codec errors
        # idna refuses some names browsers accept (underscores, leading digits in odd places)
        return host.lower() if host.isascii() else None


def email_domain(email: object) -> str | None:
    """The normalised domain of an email address (None for anything without an `@`)."""
    if not isinstance(email, str) or "@" not in email:
        return None
    return normalise_domain(email.strip().rpartition("@")[2])


class FreeMail:
    """Decides whether a normalised domain is a free-mail or ISP domain (never used for matching)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        extras = {normalise_domain(domain) or str(domain).strip().lower() for domain in extra}
        self.domains = FREE_MAIL_DOMAINS | extras
        self._known: dict[str, bool] = {}

    def is_free(self, domain: str) -> bool:
        if domain not in self._known:
            self._known[domain] = self._is_free(domain)
        return self._known[domain]

    def _is_free(self, domain: str) -> bool:
        labels = domain.split(".")
        # the domain itself or any parent: mail.yahoo.com, users.free.fr
        if any(".".join(labels[i:]) in self.domains for i in range(len(labels) - 1)):
            return True
        return len(labels) >= 2 and labels[0] in FREE_MAIL_BRANDS and bool(_COUNTRY_SUFFIX.match(".".join(labels[1:])))


# Legal forms stripped from the end of a company name before comparing.
LEGAL_SUFFIXES = frozenset("""
    inc incorporated llc lc ltd limited co company corp corporation plc lp llp pllc
    gmbh mbh ag kg kgaa ohg ug se ev
    sa sas sarl srl spa sl slu bv nv vof oy oyj ab as asa aps pty pte kk bhd sdn sro
""".split())
_WORD = re.compile(r"[a-z0-9]+")


def normalise_company_name(name: object) -> str | None:
    """`"The ACME Company, Inc."` -> `"acme"`: case, accents, punctuation and legal forms removed.

    Initials written with dots or spaces are joined (`"I.B.M."` == `"IBM"`, `"L.L.C."` == `"LLC"`).
    A name that is only a legal form keeps its last word, so it never becomes empty.
    """
    if not isinstance(name, str):
        return None
    text = unicodedata.normalize("NFKD", name)
    text = "".join(char for char in text if not unicodedata.combining(char)).lower()
    text = text.replace("&", " and ").replace("'", "").replace("\u2019", "")
    words = _join_initials(_WORD.findall(text))
    if words and words[0] == "the" and len(words) > 1:
        words = words[1:]
    while len(words) > 1 and (words[-1] in LEGAL_SUFFIXES or words[-1] == "and"):
        words.pop()
    return " ".join(words) or None


def _join_initials(words: list[str]) -> list[str]:
    joined: list[str] = []
    run = ""
    for word in words:
        if len(word) == 1 and word.isalpha():
            run += word
            continue
        if run:
            joined.append(run)
            run = ""
        joined.append(word)
    if run:
        joined.append(run)
    return joined
