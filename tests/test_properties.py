"""Property-based tests of the parsers and mappers that read untrusted input.

Each property says what must hold for *any* input, not just the examples we thought of: a value
interpolated into SOQL stays one literal, a tampered token or signature never verifies, a domain
normalises to a fixed point, and no text makes the YAML loader fail with anything but a located
`ConfigError`.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.salesforce.sandbox_soql import Comparison, parse
from connectors.salesforce.soql import soql_quote
from connectors.stripe.signature import sign, verify
from hub.domains import email_domain, normalise_domain
from hub.errors import ConfigError
from hub.unsubscribe import make_token, verify_token
from hub.yamlsource import load_yaml

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# SOQL strings are text without NUL; anything else a user types may appear in an account name
soql_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)


@FAST
@given(soql_text)
def test_any_string_interpolated_into_soql_stays_one_literal(value: str) -> None:
    query = parse(f"SELECT Id, Name FROM Account WHERE Name = {soql_quote(value)} ORDER BY Id LIMIT 5")
    assert isinstance(query.where, Comparison)
    assert query.where.field == "Name" and query.where.op == "="
    assert query.where.value.kind == "string" and query.where.value.value == value
    assert query.fields == ("Id", "Name") and query.limit == 5


@FAST
@given(st.binary(max_size=300), st.text(min_size=1, max_size=40), st.integers(1_600_000_000, 1_900_000_000),
       st.integers(0, 299), st.data())
def test_a_stripe_signature_verifies_only_its_own_payload(payload: bytes, secret: str, timestamp: int,
                                                          lag: int, data: st.DataObject) -> None:
    header = sign(payload, secret, timestamp)
    assert verify(payload, header, secret, now=timestamp + lag)
    other = data.draw(st.binary(max_size=300).filter(lambda b: b != payload))
    assert not verify(other, header, secret, now=timestamp + lag)
    assert not verify(payload, header, secret + "x", now=timestamp + lag)
    assert not verify(payload, header, secret, now=timestamp + 301)          # stale


@FAST
@given(st.emails(), st.text(min_size=8, max_size=40), st.data())
def test_unsubscribe_tokens_round_trip_and_any_change_breaks_them(email: str, secret: str,
                                                                  data: st.DataObject) -> None:
    token = make_token(email, secret)
    assert verify_token(token, secret) == email
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("AbZ09-_.").filter(lambda c: c != token[position]))
    tampered = token[:position] + replacement + token[position + 1:]
    # a changed token never names another address (a non-canonical base64 spelling of the same
    # bytes may still verify as the same address, which grants nothing new)
    assert verify_token(tampered, secret) in (None, email)
    assert verify_token(token, secret + "!") is None
    other = make_token("someone." + email, secret)
    forged = other.split(".")[0] + "." + token.split(".")[1]
    assert verify_token(forged, secret) is None


@FAST
@given(st.text(max_size=80))
def test_unsubscribe_verification_never_raises(token: str) -> None:
    assert verify_token(token, "s3cret-value") is None or isinstance(verify_token(token, "s3cret-value"), str)


@FAST
@given(st.from_regex(r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?\.(com|io|co\.uk|example)", fullmatch=True),
       st.sampled_from(["", "http://", "https://", "HTTPS://www.", "www."]),
       st.sampled_from(["", "/", "/pricing?x=1", ":8443/app"]))
def test_a_website_normalises_to_its_domain_whatever_the_spelling(domain: str, prefix: str, suffix: str) -> None:
    spelled = (prefix + domain + suffix)
    assert normalise_domain(spelled.upper() if prefix.isupper() else spelled) == domain
    assert normalise_domain(domain) == domain                     # a fixed point


@FAST
@given(st.text(max_size=120))
def test_domain_and_email_parsing_never_raise(value: str) -> None:
    normalised = normalise_domain(value)
    assert normalised is None or (normalised == normalised.lower() and " " not in normalised)
    email_domain(value)


@FAST
@given(st.text(max_size=300))
def test_any_text_as_config_is_parsed_or_refused_with_a_located_error(text: str) -> None:
    try:
        load_yaml(text, "churnhub.yaml", {})
    except ConfigError as exc:
        assert "churnhub.yaml" in str(exc)
