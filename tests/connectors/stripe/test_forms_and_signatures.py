"""Stripe's bracket form encoding (both ways) and webhook signatures."""

from __future__ import annotations

import pytest

from connectors.stripe import forms, signature


def test_nested_parameters_flatten_to_bracket_keys():
    params = {"pause_collection": {"behavior": "void", "resumes_at": 1700000000},
              "discounts": [{"coupon": "WINBACK"}], "expand": ["customer", "latest_invoice"],
              "off_session": True, "metadata": {"gone": None}}
    assert forms.flatten(params) == [
        ("pause_collection[behavior]", "void"), ("pause_collection[resumes_at]", "1700000000"),
        ("discounts[0][coupon]", "WINBACK"), ("expand[0]", "customer"), ("expand[1]", "latest_invoice"),
        ("off_session", "true"), ("metadata[gone]", "")]


def test_none_and_empty_containers_unset():
    assert forms.flatten({"pause_collection": None, "discounts": [], "metadata": {}}) == [
        ("pause_collection", ""), ("discounts", ""), ("metadata", "")]


def test_parse_is_the_inverse_of_encode():
    params = {"items": [{"price": "price_1", "quantity": "2"}, {"id": "si_1", "deleted": "true"}],
              "metadata": {"0": "zero", "crm": "001"}, "cancellation_details": {"feedback": "unused"}}
    assert forms.parse(forms.encode(params)) == params


def test_parse_understands_empty_brackets_and_blank_values():
    assert forms.parse("types[]=a.b&types[]=c.*&pause_collection=&email=x%40y.z") == {
        "types": ["a.b", "c.*"], "pause_collection": "", "email": "x@y.z"}


def test_parse_refuses_malformed_names():
    with pytest.raises(ValueError, match="malformed"):
        forms.parse("a]b=1")


def test_signature_round_trip_and_tampering():
    payload, secret = b'{"id":"evt_1"}', "whsec_test"
    header = signature.sign(payload, secret, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert signature.verify(payload, header, secret, now=1_700_000_100)
    assert not signature.verify(payload + b" ", header, secret, now=1_700_000_100)
    assert not signature.verify(payload, header, "whsec_other", now=1_700_000_100)
    assert not signature.verify(payload, header, secret, now=1_700_000_301)  # older than the tolerance
    assert not signature.verify(payload, None, secret)
    # any of several v1 signatures may match (Stripe sends one per active secret while rolling)
    rolled = f"t=1700000000,v1={'0' * 64},{header.split(',')[1]}"
    assert signature.verify(payload, rolled, secret, now=1_700_000_000)
