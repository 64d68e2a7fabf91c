"""The endpoints of the Zendesk sandbox: lists, single objects, writes and incremental exports."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .sandbox_http import Credential, StripJsonSuffix, ZendeskApi, json_bytes, list_body, new_error
from .sandbox_store import ApiProblem, Collection, decode_cursor, dumps, encode_cursor, invalid, to_unix

MAX_PAGE_SIZE = 100
OFFSET_LIMIT = 10_000
EXPORT_LAG = 60


def _int(value: str | None, name: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise ApiProblem(400, {"error": "InvalidValue", "description": f"{name} is required"})
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiProblem(400, {"error": "InvalidValue", "description": f"{name} must be an integer"}) from None


async def _body(request: Request, key: str) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiProblem(400, {"error": "InvalidJSON", "description": "The request body is not valid JSON"}) from None
    if not isinstance(body, dict) or not isinstance(body.get(key), dict | list):
        raise ApiProblem(400, {"error": "InvalidValue", "description": f"The body must be {{\"{key}\": ...}}"})
    return body


def listing(api: ZendeskApi, request: Request, key: str, ids: Sequence[int], encode: Callable[[int], bytes],
            keep: Callable[[int], bool] | None = None) -> Response:
    """A list endpoint: cursor pagination with `page[size|after|before]`, else offset pagination."""
    query = request.query_params
    if any(name.startswith("page[") for name in query):
        return _cursor_page(api, request, key, ids, encode, keep)
    page, per_page = _int(query.get("page"), "page", 1), min(_int(query.get("per_page"), "per_page", 100), 100)
    if page < 1 or per_page < 1:
        raise new_error(400, "InvalidPaginationParameter", "Invalid pagination", "page and per_page start at 1")
    offset = (page - 1) * per_page
    if offset >= OFFSET_LIMIT:
        raise new_error(400, "InvalidPaginationParameter", "Invalid pagination",
                        "Offset pagination is limited to the first 10,000 records (100 pages); "
                        "use cursor pagination (page[size]) instead")
    matched = ids if keep is None else [i for i in ids if keep(i)]
    chosen = matched[offset:offset + per_page]
    others = {k: v for k, v in query.items() if k not in ("page", "per_page")}
    more = offset + per_page < len(matched)
    extra = {"next_page": api.link(request, {**others, "page": page + 1, "per_page": per_page}) if more else None,
             "previous_page": api.link(request, {**others, "page": page - 1, "per_page": per_page}) if page > 1
             else None, "count": len(matched)}
    return json_bytes(list_body(key, [encode(i) for i in chosen], extra))


def _cursor_page(api: ZendeskApi, request: Request, key: str, ids: Sequence[int], encode: Callable[[int], bytes],
                 keep: Callable[[int], bool] | None) -> Response:
    query = request.query_params
    size = _int(query.get("page[size]"), "page[size]", MAX_PAGE_SIZE)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise new_error(400, "InvalidPaginationParameter", "Invalid pagination",
                        f"page[size] must be between 1 and {MAX_PAGE_SIZE}")
    after, before = query.get("page[after]"), query.get("page[before]")
    try:
        if before:
            end = bisect_left(ids, decode_cursor(before)["id"])
            positions = range(end - 1, -1, -1)
        else:
            positions = range(bisect_left(ids, decode_cursor(after)["id"] + 1) if after else 0, len(ids))
    except (ValueError, KeyError, TypeError):
        raise new_error(400, "InvalidPaginationParameter", "Invalid pagination", "invalid cursor") from None
    chosen: list[int] = []
    for position in positions:
        if keep is None or keep(ids[position]):
            chosen.append(ids[position])
            if len(chosen) > size:
                break
    more = len(chosen) > size
    chosen = chosen[:size]
    if before:
        chosen.reverse()
    after_cursor = encode_cursor({"id": chosen[-1]}) if chosen else None
    before_cursor = encode_cursor({"id": chosen[0]}) if chosen else None
    others = {k: v for k, v in query.items() if k not in ("page[after]", "page[before]")}
    extra = {
        "meta": {"has_more": more, "after_cursor": after_cursor, "before_cursor": before_cursor},
        "links": {"next": api.link(request, {**others, "page[after]": after_cursor}) if chosen else None,
                  "prev": api.link(request, {**others, "page[before]": before_cursor}) if chosen else None},
    }
    return json_bytes(list_body(key, [encode(i) for i in chosen], extra))


def _export_start(api: ZendeskApi, value: str | None) -> int:
    start_time = _int(value, "start_time")
    if start_time > api.world.now() - EXPORT_LAG:
        raise ApiProblem(400, {"error": "InvalidValue", "description": "Too recent start_time. Use a start_time "
                               "at least one minute in the past"})
    return start_time


def cursor_export(api: ZendeskApi, request: Request, key: str, collection: Collection) -> Response:
    """`/incremental/<key>/cursor.json`: `start_time` or `cursor`; the last minute is hidden."""
    query = request.query_params
    per_page = min(_int(query.get("per_page"), "per_page", api.limits.export_page_size), 1000)
    if query.get("cursor"):
        try:
            position = tuple(decode_cursor(query["cursor"]))
        except (ValueError, TypeError):
            raise ApiProblem(400, {"error": "InvalidValue", "description": "Invalid cursor"}) from None
    else:
        position = (_export_start(api, query.get("start_time")), -1)
    with api.world.lock:
        keys, more = collection.by_time.after(position, per_page, api.world.now() - EXPORT_LAG)
        items = [collection.json(object_id) for _, object_id in keys]
    after_cursor = encode_cursor(list(keys[-1] if keys else position))
    extra = {"after_cursor": after_cursor, "after_url": api.link(request, {"cursor": after_cursor}),
             "before_cursor": None, "before_url": None, "end_of_stream": not more}
    return json_bytes(list_body(key, items, extra))


def time_export(api: ZendeskApi, request: Request, key: str, collection: Collection) -> Response:
    """The time-based export: `next_page` restarts at the last record's second (duplicates included)."""
    start_time = _export_start(api, request.query_params.get("start_time"))
    with api.world.lock:
        keys, more = collection.by_time.after((start_time, -1), api.limits.export_page_size,
                                              api.world.now() - EXPORT_LAG)
        items = [collection.json(object_id) for _, object_id in keys]
    end_time = keys[-1][0] if keys else start_time
    extra = {"count": len(items), "end_time": end_time,
             "next_page": api.link(request, {"start_time": end_time}), "end_of_stream": not more}
    return json_bytes(list_body(key, items, extra))


def rating_filter(world: Any, query: Mapping[str, str]) -> Callable[[int], bool] | None:
    """`score` (good, bad, received, offered, unoffered; `_with_comment`/`_without_comment`) and
    `start_time`/`end_time` (unix seconds, inclusive, compared with `updated_at`)."""
    score = query.get("score")
    start, end = query.get("start_time"), query.get("end_time")
    if not (score or start or end):
        return None
    base, _, comment = (score or "").partition("_with")
    if base and base not in ("good", "bad", "received", "offered", "unoffered"):
        raise invalid("score", f"Score: {score!r} is not a valid value")
    low, high = _int(start, "start_time", 0), _int(end, "end_time", 2**62)
    scores = {"received": ("good", "bad")}.get(base, (base,))

    def keep(rating_id: int) -> bool:
        rating = world.ratings.objects[rating_id]
        if base and rating["score"] not in scores:
            return False
        if comment and bool(rating.get("comment")) != (comment == "_comment"):
            return False
        return low <= to_unix(rating["updated_at"]) <= high

    return keep


def add_routes(api: ZendeskApi, routes: list[Route]) -> None:
    world = api.world

    def one(key: str, obj: dict[str, Any], status: int = 200, **extra: Any) -> Response:
        headers = {"Location": world.url(f"{key}s", obj["id"])} if status == 201 else None
        return json_bytes(dumps({key: obj, **extra}), status, headers)

    async def me(request: Request, who: Credential) -> Response:
        return one("user", world.users.objects[who.user_id])

    async def list_of(request: Request, who: Credential) -> Response:
        name = request.url.path.rsplit("/", 1)[-1]
        collection = {"organizations": world.organizations, "users": world.users, "tickets": world.tickets}[name]
        with world.lock:
            ids: Sequence[int] = collection.listed
            if name == "tickets" and "external_id" in request.query_params:
                ids = sorted(world.tickets_with_external_id(request.query_params["external_id"]))
            return listing(api, request, name, ids, collection.json)

    async def show(request: Request, who: Credential) -> Response:
        kind, object_id = request.url.path.split("/")[3], request.path_params["id"]
        with world.lock:
            getter = {"organizations": world.organization, "users": world.user, "tickets": world.ticket}[kind]
            return one(kind[:-1], getter(object_id))

    async def create_organization(request: Request, who: Credential) -> Response:
        return one("organization", world.create_organization((await _body(request, "organization"))["organization"]),
                   201)

    async def update_organization(request: Request, who: Credential) -> Response:
        changes = (await _body(request, "organization"))["organization"]
        return one("organization", world.update_organization(request.path_params["id"], changes))

    async def organization_tags(request: Request, who: Credential) -> Response:
        org_id = request.path_params["id"]
        if request.method == "GET":
            with world.lock:
                return JSONResponse({"tags": world.organization(org_id)["tags"]})
        tags = (await _body(request, "tags"))["tags"]
        how = {"PUT": "add", "POST": "set", "DELETE": "remove"}[request.method]
        return JSONResponse({"tags": world.change_organization_tags(org_id, tags, how)})

    async def create_ticket(request: Request, who: Credential) -> Response:
        ticket, comment = world.create_ticket((await _body(request, "ticket"))["ticket"], who.user_id)
        return one("ticket", ticket, 201, audit=_audit(ticket, comment, who))

    async def update_ticket(request: Request, who: Credential) -> Response:
        changes = (await _body(request, "ticket"))["ticket"]
        ticket, comment = world.update_ticket(request.path_params["id"], changes, who.user_id)
        return one("ticket", ticket, audit=_audit(ticket, comment, who))

    async def comments(request: Request, who: Credential) -> Response:
        with world.lock:
            ticket = world.ticket(request.path_params["id"])
            by_id = {c["id"]: c for c in world.comments_of(ticket["id"])}
            return listing(api, request, "comments", list(by_id), lambda i: dumps(by_id[i]))

    async def satisfaction_ratings(request: Request, who: Credential) -> Response:
        with world.lock:
            keep = rating_filter(world, request.query_params)
            return listing(api, request, "satisfaction_ratings", world.ratings.listed, world.ratings.json, keep)

    async def ticket_export(request: Request, who: Credential) -> Response:
        return cursor_export(api, request, "tickets", world.tickets)

    async def user_export(request: Request, who: Credential) -> Response:
        return cursor_export(api, request, "users", world.users)

    async def organization_export(request: Request, who: Credential) -> Response:
        return time_export(api, request, "organizations", world.organizations)

    v2 = "/api/v2"
    table: list[tuple[str, Any, list[str], bool]] = [
        ("/users/me", me, ["GET"], False),
        ("/users", list_of, ["GET"], False),
        ("/users/{id:int}", show, ["GET"], False),
        ("/organizations", list_of, ["GET"], False),
        ("/organizations", create_organization, ["POST"], False),
        ("/organizations/{id:int}", show, ["GET"], False),
        ("/organizations/{id:int}", update_organization, ["PUT"], False),
        ("/organizations/{id:int}/tags", organization_tags, ["GET", "PUT", "POST", "DELETE"], False),
        ("/tickets", list_of, ["GET"], False),
        ("/tickets", create_ticket, ["POST"], False),
        ("/tickets/{id:int}", show, ["GET"], False),
        ("/tickets/{id:int}", update_ticket, ["PUT"], False),
        ("/tickets/{id:int}/comments", comments, ["GET"], False),
        ("/satisfaction_ratings", satisfaction_ratings, ["GET"], False),
        ("/incremental/tickets/cursor", ticket_export, ["GET"], True),
        ("/incremental/users/cursor", user_export, ["GET"], True),
        ("/incremental/organizations", organization_export, ["GET"], True),
    ]
    for path, handler, methods, export in table:
        routes.append(Route(v2 + path, api.endpoint(handler, export=export), methods=methods))


def _audit(ticket: dict[str, Any], comment: dict[str, Any] | None, who: Credential) -> dict[str, Any]:
    events = [{"id": comment["id"], "type": "Comment", "body": comment["body"], "public": comment["public"],
               "author_id": comment["author_id"]}] if comment else []
    return {"ticket_id": ticket["id"], "author_id": who.user_id, "created_at": ticket["updated_at"], "events": events}


def build_app(api: ZendeskApi) -> Any:
    routes: list[Route] = []
    add_routes(api, routes)

    async def unknown(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "InvalidEndpoint", "description": "Not found"}, 404)

    return StripJsonSuffix(Starlette(routes=routes, exception_handlers={404: unknown}))
