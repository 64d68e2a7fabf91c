"""Every value put into SOQL is escaped: a hostile account name cannot change the query."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.sandbox import SalesforceSandbox
from connectors.salesforce.sandbox_soql import Comparison, parse
from connectors.salesforce.soql import (
    after_position,
    in_list,
    select,
    soql_datetime,
    soql_literal,
    soql_quote,
)
from hub import PermanentError

from .conftest import NOW, account

HOSTILE = "O'Brien \\ Sons' OR Name != '"
NASTY = [HOSTILE, "", "plain", "quote ' double \" back \\ end\\", "line\nbreak\ttab\rcr\bbs\fff",
         "\x00\x01 control \x7f", "unicode é ✓ \\u0041", "' OR '1'='1", "\\'", "trailing backslash \\"]


@pytest.mark.parametrize("value", NASTY)
def test_a_quoted_value_parses_back_to_exactly_itself(value: str) -> None:
    query = parse(f"SELECT Id FROM Account WHERE Name = {soql_quote(value)}")
    assert isinstance(query.where, Comparison)
    assert query.where.field == "Name" and query.where.op == "="
    assert query.where.value.kind == "string" and query.where.value.value == value   # type: ignore[union-attr]


def test_quote_escapes() -> None:
    assert soql_quote(HOSTILE) == "'O\\'Brien \\\\ Sons\\' OR Name != \\''"
    assert soql_quote("a\nb\u0001") == "'a\\nb\\u0001'"


def test_literals_and_keyset_condition() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert soql_datetime(moment) == "2024-05-01T12:00:00.123Z"
    assert soql_literal(True) == "TRUE" and soql_literal(None) == "null" and soql_literal(5) == "5"
    assert in_list("Id", ["001A", "x'y"]) == "Id IN ('001A', 'x\\'y')"
    condition = after_position(moment.replace(microsecond=0), "001SB'")
    assert condition == ("(SystemModstamp > 2024-05-01T12:00:00Z) OR "
                         "(SystemModstamp = 2024-05-01T12:00:00Z AND Id > '001SB\\'')")
    parse(select("Account", ["Id"], where=condition, order_by=["SystemModstamp ASC", "Id ASC"], limit=10))


def test_hostile_name_selects_only_its_own_account(sandbox_factory: Callable[..., SalesforceSandbox],
                                                     connect: Callable[..., SalesforceConnector]) -> None:
    others = [account(n, NOW - 100 + n, Name=name) for n, name in
              enumerate(["O'Brien", "Sons", "Acme", "", "O'Brien \\ Sons"], start=1)]
    target = account(9, NOW - 50, Name=HOSTILE)
    sandbox = sandbox_factory({"Account": [*others, target]})
    client = connect(sandbox).client
    soql = select("Account", ["Id", "Name"], where=f"Name = {soql_quote(HOSTILE)}")
    found = list(client.query_records(soql))
    assert [(r["Id"], r["Name"]) for r in found] == [(target["Id"], HOSTILE)]
    sent = [parse_qs(urlsplit(path).query)["q"][0] for method, path, _ in sandbox.request_log if "/query?" in path]
    assert sent == [soql]                              # the query text as sent is the escaped one
    assert parse(sent[0]).where == parse(soql).where   # one comparison of Name with the whole name

    # The same name pasted in raw would have been a different (here: broken) query.
    with pytest.raises(PermanentError) as refused:
        list(client.query_records(f"SELECT Id, Name FROM Account WHERE Name = '{HOSTILE}'"))
    assert refused.value.code == "MALFORMED_QUERY"


def test_ids_in_a_list_are_escaped_too(sandbox_factory: Callable[..., SalesforceSandbox],
                                       connect: Callable[..., SalesforceConnector]) -> None:
    sandbox = sandbox_factory({"Account": [account(1, NOW - 10), account(2, NOW - 9)]})
    client = connect(sandbox).client
    wanted = [account(1, 0)["Id"], "x') OR (Id != 'y"]
    found = list(client.query_records(select("Account", ["Id"], where=in_list("Id", wanted))))
    assert [r["Id"] for r in found] == [account(1, 0)["Id"]]
