"""The demo world as a Salesforce sandbox dataset (REST-shaped records, see `connectors/salesforce/sandbox.py`).

    dataset = salesforce_dataset(world)
    # {"User": [...], "Account": [...], "Contact": [...], "Opportunity": [...]}

Every company is an Account (its `Id` is `Company.sf_id`, the id Stripe metadata and Zendesk
`external_id` point at) owned by one of the vendor's CSMs/AEs, with the website as the CRM has it
(`www.`, upper case, paths, sometimes missing) and the product usage the vendor's data pipeline
writes back into custom fields: `Last_Login__c`, `Active_Users__c` (mean daily active users over
the last 30 days), `Onboarding_Stage__c` and `NPS__c` (the latest survey answer). Contacts are the
company's people; opportunities are the first deal and the renewals (won, lost at a churn, or open
for the next renewal). Map the custom fields with `CRM_FACTS` / `CRM_FIELDS`.

`iter_salesforce(world)` yields `(object name, record)` one company at a time, for worlds too big
to hold as one dict.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from hub.demo import vocabulary as V
from hub.demo.activity import active_until, people, usage_series
from hub.demo.billing import unit_amount
from hub.demo.world import DAY, Company, Fate, World, add_months, last_period_start, salesforce_id, token

CRM_FACTS = {"last_login": "Last_Login__c", "active_users": "Active_Users__c",
             "lifecycle_stage": "Onboarding_Stage__c", "nps": "NPS__c"}
CRM_FIELDS = {"Account": ["Plan__c", "Seats__c"]}
# the custom fields' types, for the sandbox (it would guess them from the first value, which may be null)
CUSTOM_FIELDS = {"Account": {"Last_Login__c": "datetime", "Active_Users__c": "double", "Onboarding_Stage__c": "picklist",
                             "NPS__c": "double", "Plan__c": "string", "Seats__c": "double"}}
USER_SALT = 4_242
CONTACTS_PER_ACCOUNT = 8           # id space reserved per company (people() makes at most 5)
OPPORTUNITIES_PER_ACCOUNT = 4


def api_datetime(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def api_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def user_id(world: World, number: int) -> str:
    return salesforce_id("005", number, world.seed * 7 + USER_SALT)


def users(world: World) -> list[dict[str, Any]]:
    """The vendor's CRM users (account owners)."""
    created = api_datetime(world.start - 1000 * DAY)
    result = []
    for n, (name, role) in enumerate(V.CRM_USERS):
        first, last = name.split(" ", 1)
        email = f"{first.lower()}.{last.lower()}@{V.VENDOR_DOMAIN}"
        result.append({"Id": user_id(world, n), "FirstName": first, "LastName": last, "Name": name, "Email": email,
                       "Username": email, "IsActive": True, "Title": role, "CreatedDate": created,
                       "SystemModstamp": created})
    return result


def salesforce_dataset(world: World) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = {"User": [], "Account": [], "Contact": [], "Opportunity": []}
    for sobject, record in iter_salesforce(world):
        data[sobject].append(record)
    return data


def iter_salesforce(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
    for record in users(world):
        yield "User", record
    for company in world.companies:
        yield from company_records(world, company)


def company_records(world: World, company: Company) -> Iterator[tuple[str, dict[str, Any]]]:
    rng = world.rng(company, "salesforce")
    owner = user_id(world, company.owner)
    account_created = company.created - rng.randrange(7 * DAY, 60 * DAY)   # the deal came first
    account = _account(world, company, owner, account_created, rng.uniform(40_000, 260_000))
    yield "Account", account
    for i, person in enumerate(people(world, company)):
        created = min(world.now - DAY, account_created + rng.randrange(0, 90 * DAY))
        contact_id = salesforce_id("003", company.index * CONTACTS_PER_ACCOUNT + i, world.seed)
        yield "Contact", {"Id": contact_id, "AccountId": company.sf_id, "FirstName": person.first_name,
                          "LastName": person.last_name, "Email": person.email, "Title": person.title,
                          "OwnerId": owner, "CreatedDate": api_datetime(created),
                          "SystemModstamp": api_datetime(created + rng.randrange(0, DAY))}
    for k, opportunity in enumerate(_opportunities(world, company, account_created)):
        opportunity_id = salesforce_id("006", company.index * OPPORTUNITIES_PER_ACCOUNT + k, world.seed)
        yield "Opportunity", {"Id": opportunity_id, "AccountId": company.sf_id, "OwnerId": owner, **opportunity}


def _account(world: World, company: Company, owner: str, created: int, revenue_per_employee: float) -> dict[str, Any]:
    stamp = max(created, min(world.now - 3600, active_until(company, world)))
    record: dict[str, Any] = {
        "Id": company.sf_id, "Name": company.name, "Website": company.website, "Industry": company.industry,
        "AnnualRevenue": float(round(company.employees * revenue_per_employee, -3)), "OwnerId": owner,
        "Type": "Former Customer" if company.churned else "Customer", "BillingCountry": company.country,
        "Description": f"{company.employees} employees", "CreatedDate": api_datetime(created),
        "Plan__c": company.new_plan or company.plan, "Seats__c": float(company.new_seats or company.seats),
        "Onboarding_Stage__c": _stage(world, company), "NPS__c": float(company.nps) if company.nps is not None else None,
        "Last_Login__c": None, "Active_Users__c": 0.0,
    }
    series = usage_series(world, company)
    if len(series.days):
        last_day = int(series.days[-1])
        record["Active_Users__c"] = round(series.mean_active_users(last_day - 29, last_day), 1)
        logged_in = series.days[series.logins > 0]
        if len(logged_in):
            hour = int(token(world.seed, "login", company.index, length=4), 36) % 12 + 7
            record["Last_Login__c"] = api_datetime(int(logged_in[-1]) * DAY + hour * 3600)
    record["SystemModstamp"] = api_datetime(stamp)
    return record


def _stage(world: World, company: Company) -> str:
    tenure = (active_until(company, world) - company.created) / DAY
    if tenure < 30:
        return "Kickoff"
    if tenure < 60:
        return "Implementation"
    if tenure < 90:
        return "Training"
    grew = company.fate is Fate.RETAINED and company.engagement > 0.75 and company.seats >= 10
    return "Expanding" if grew else "Adopted"


def _annual_value(company: Company, plan: str, seats: int) -> float:
    months = 1 if company.interval == "year" else 12
    return unit_amount(plan, company.interval) * seats * months / 100


def _opportunities(world: World, company: Company, account_created: int) -> list[dict[str, Any]]:
    """The first deal, the last renewal decided, and the next one (open, or lost at a churn)."""
    value = _annual_value(company, company.plan, company.seats)
    first = {"Name": f"{company.name} - New Business", "Type": "New Business", "StageName": "Closed Won",
             "Amount": value, "CloseDate": api_date(company.created), "Probability": 100.0,
             "CreatedDate": api_datetime(account_created), "SystemModstamp": api_datetime(company.created)}
    deals = [first]
    # renewals are yearly contracts in the CRM, whatever the billing interval
    last_renewal = last_period_start(company.created, "year", active_until(company, world))
    if last_renewal > company.created:
        deals.append(_renewal(world, company, last_renewal, "Closed Won", value))
    if company.churned and company.event_at is not None:
        deals.append(_renewal(world, company, company.event_at, "Closed Lost", value))
    else:
        plan, seats = company.new_plan or company.plan, company.new_seats or company.seats
        next_renewal = add_months(last_renewal, 12)
        stage = "Negotiation/Review" if next_renewal - world.now < 60 * DAY else "Prospecting"
        deal = _renewal(world, company, next_renewal, stage, _annual_value(company, plan, seats))
        deal["SystemModstamp"] = api_datetime(min(world.now - 3600, next_renewal - 90 * DAY))
        deals.append(deal)
    return deals


def _renewal(world: World, company: Company, close: int, stage: str, amount: float) -> dict[str, Any]:
    year = datetime.fromtimestamp(close, UTC).year
    probability = {"Closed Won": 100.0, "Closed Lost": 0.0, "Negotiation/Review": 75.0}.get(stage, 20.0)
    return {"Name": f"{company.name} - Renewal {year}", "Type": "Renewal", "StageName": stage, "Amount": amount,
            "CloseDate": api_date(close), "Probability": probability,
            "CreatedDate": api_datetime(min(close - 120 * DAY, world.now - DAY)),
            "SystemModstamp": api_datetime(min(close, world.now - 3600))}
