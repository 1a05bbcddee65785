"""The review inbox: `/review` on dmgate's own port, a sub-application with its own
security headers. Server-rendered pages (Jinja2, autoescaped) and one small script for
the keyboard and live updates; nothing from a CDN, no build step.

Every state change is a POST with the session's CSRF token; every decision goes through
`proxy.inbox.actions`.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from proxy.context import CTX, Context
from proxy.errors import NotFound, Unprocessable
from proxy.holds import HoldNotPending
from proxy.inbox import actions, present, sessions
from proxy.inbox.campaigns import fixed_and_varying
from proxy.inbox.views import history
from proxy.openapi import HOLD_ID_PATTERN, MAX_NOTE, MAX_REASON, MAX_TEXT, TEMPLATE_ID_PATTERN
from proxy.reviewers import token_digest
from proxy.store import Store
from proxy.store.holds import PENDING
from proxy.store.inbox import HoldFilter

HERE = Path(__file__).parent
PAGE = 50
_HOLD_ID = re.compile(HOLD_ID_PATTERN)
_TEMPLATE_ID = re.compile(TEMPLATE_ID_PATTERN)
_FILTERS = ("platform", "account", "policy", "campaign")
# Polled by the page script (inbox.js): at most this many seconds between looks.
LIVE_POLL_SECONDS = 3
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
JINJA = web.AppKey("inbox_jinja", jinja2.Environment)


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith("/review/static/"):
        resp.headers.setdefault("Cache-Control", "no-store")
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


def _ctx(request: web.Request) -> Context:
    return request.config_dict[CTX]


def _render(request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
    template = request.app[JINJA].get_template(name)
    body = template.render(live_poll_ms=LIVE_POLL_SECONDS * 1000, words=present, **values)
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")


async def _session(request: web.Request) -> sessions.Session:
    session = await sessions.current(request)
    if session is None:
        nxt = request.path_qs if request.method == "GET" else "/review/inbox"
        raise web.HTTPSeeOther(f"/review/signin?{urlencode({'next': nxt})}")
    return session


async def _form(request: web.Request, session: sessions.Session) -> Any:
    form = await request.post()
    sent = form.get("csrf") or request.headers.get("X-CSRF-Token")
    if not sessions.csrf_ok(session, sent if isinstance(sent, str) else None):
        raise web.HTTPForbidden(
            text="This form has expired or did not come from the review inbox. "
            "Go back, reload the page and try again.",
            content_type="text/plain",
        )
    return form


def _field(form: Any, name: str, limit: int) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    # Browsers send a textarea's line breaks as CRLF: an untouched multi-line text must
    # compare equal to the held one.
    value = value.replace("\x00", "").replace("\r\n", "\n").strip()
    return value[:limit] if value else None


def _back(form: Any) -> str:
    """Where to go after a decision: back to the inbox page the reviewer came from."""
    back = form.get("back")
    if isinstance(back, str) and re.fullmatch(r"/review/inbox(\?[A-Za-z0-9_%=&.+-]*)?", back):
        return back
    return "/review/inbox"


def _safe_next(value: str | None) -> str:
    if value and re.fullmatch(r"/review/[A-Za-z0-9_/%=&?.+-]*", value) and "//" not in value:
        return value
    return "/review/inbox"


# --- sign-in ----------------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/review/inbox")


async def signin_page(request: web.Request) -> web.Response:
    nxt = _safe_next(request.query.get("next"))
    if await sessions.current(request) is not None:
        raise web.HTTPSeeOther(nxt)
    return _signin_form(request, nxt, error=False)


def _signin_form(request: web.Request, nxt: str, error: bool) -> web.Response:
    csrf, cookie = sessions.signin_csrf(request)
    status = 401 if error else 200
    resp = _render(request, "signin.html", status=status, nxt=nxt, csrf=csrf, error=error)
    sessions.set_signin_cookie(request, resp, cookie)
    return resp


async def signin(request: web.Request) -> web.Response:
    form = await request.post()
    nxt = _safe_next(form.get("next") if isinstance(form.get("next"), str) else None)
    csrf_sent = form.get("csrf")
    if not sessions.signin_csrf_ok(request, csrf_sent if isinstance(csrf_sent, str) else None):
        raise web.HTTPForbidden(
            text="The sign-in form expired. Reload the page and try again.",
            content_type="text/plain",
        )
    token = form.get("token")
    name, digest = None, ""
    if isinstance(token, str) and token.strip():
        name = _ctx(request).reviewers.name_for(token.strip())
        if name is not None:
            digest = token_digest(token.strip())
    if name is None:
        return _signin_form(request, nxt, error=True)
    resp = web.HTTPSeeOther(nxt)
    sessions.start(request, resp, name, digest)
    raise resp


async def signout(request: web.Request) -> web.Response:
    session = await _session(request)
    await _form(request, session)
    resp = web.HTTPSeeOther("/review/signin")
    await sessions.end(request, resp, session)
    raise resp


# --- the inbox --------------------------------------------------------------------------


def _filters(request: web.Request) -> dict[str, str]:
    out = {}
    for key in _FILTERS:
        value = request.query.get(key, "").strip()
        if value and len(value) <= 128:
            out[key] = value
    if "campaign" in out and not _TEMPLATE_ID.fullmatch(out["campaign"]):
        del out["campaign"]
    return out


def _recipients_view(profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**p, "display": present.display_name(p), "short": present.short_name(p)} for p in profiles
    ]


async def _senders(store: Store, accounts: list[str]) -> dict[str, str]:
    """How each sending account is shown: its handle when dmgate saw its profile."""
    known = await store.profiles.accounts(accounts)
    return {a: present.short_name(known[a]) if a in known else a for a in accounts}


def _hold_summary(
    row: dict[str, Any], profiles: list[dict[str, Any]], now: datetime, sender: str
) -> Any:
    recipients = _recipients_view(profiles)
    matches = row["policies"]
    first = matches[0] if matches else {"policy": "", "reason": ""}
    return {
        "id": row["id"],
        "platform": row["platform"],
        "account": row["account"],
        "sender": sender,
        "recipients": recipients,
        "policies": [present.policy_label(m["policy"]) for m in matches],
        "reason": present.reason_text(first, profiles),
        "preview": row["text"][:160] + ("…" if len(row["text"]) > 160 else ""),
        "age": present.age(row["created_at"], now),
        "created_at": row["created_at"],
        "template_id": row.get("template_id"),
        "status": row["status"],
    }


async def inbox(request: web.Request) -> web.Response:
    session = await _session(request)
    ctx = _ctx(request)
    filters = _filters(request)
    newest = request.query.get("order") == "newest"
    cursor = request.query.get("cursor")
    if cursor is not None and not _HOLD_ID.fullmatch(cursor):
        cursor = None
    where = HoldFilter(
        status=PENDING,
        platform=filters.get("platform"),
        account=filters.get("account"),
        policy=filters.get("policy"),
        template=filters.get("campaign"),
    )
    rows = await ctx.store.inbox.page(where, PAGE + 1, cursor, oldest_first=not newest)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    profiles = await ctx.store.profiles.for_holds(rows)
    facets = await ctx.store.inbox.facets(PENDING)
    now = ctx.clock.now()
    senders = await _senders(
        ctx.store, sorted({r["account"] for r in rows} | set(facets["account"]))
    )
    holds = [_hold_summary(r, profiles.get(r["id"], []), now, senders[r["account"]]) for r in rows]
    campaign_names = await _campaign_labels(ctx.store, list(facets["template"]))
    base = {**filters, **({"order": "newest"} if newest else {})}
    next_url = (
        f"/review/inbox?{urlencode({**base, 'cursor': rows[-1]['id']})}" if more and rows else None
    )
    return _render(
        request,
        "inbox.html",
        session=session,
        holds=holds,
        filters=filters,
        facets=facets,
        campaign_names=campaign_names,
        senders=senders,
        total=sum(facets["platform"].values()),
        newest=newest,
        next_url=next_url,
        first_page=cursor is None,
        here=request.path_qs,
        link=lambda **kw: "/review/inbox?" + urlencode({k: v for k, v in kw.items() if v}),
        base=base,
        message=_notice(request.query.get("m")),
        version=await ctx.store.inbox.version(),
    )


async def _campaign_labels(store: Store, template_ids: list[str]) -> dict[str, str]:
    """A campaign's label in the filters: the start of its oldest copy."""
    labels = {}
    for tid in template_ids[:50]:
        copies = await store.inbox.campaign(tid, limit=1)
        text = copies[0]["text"] if copies else tid
        labels[tid] = text[:48] + ("…" if len(text) > 48 else "")
    return labels


# --- one hold ---------------------------------------------------------------------------


async def hold_page(request: web.Request) -> web.Response:
    session = await _session(request)
    return await _hold_response(request, session, request.match_info["id"])


async def _hold_response(
    request: web.Request,
    session: sessions.Session,
    hold_id: str,
    status: int = 200,
    error: str | None = None,
    text: str | None = None,
) -> web.Response:
    ctx = _ctx(request)
    row = await ctx.store.holds.get(hold_id) if _HOLD_ID.fullmatch(hold_id) else None
    if row is None:
        return _render(request, "missing.html", status=404, session=session)
    profiles = (await ctx.store.profiles.for_holds([row])).get(row["id"], [])
    now = ctx.clock.now()
    senders = await _senders(ctx.store, [row["account"]])
    hold = _hold_summary(row, profiles, now, senders[row["account"]])
    copies, pending_copies, campaign_recipients = await _campaign(ctx.store, row)
    others = [c["text"] for c in copies if c["id"] != row["id"]]
    earlier = await ctx.store.inbox.earlier_to(
        row["platform"], row["account"], row["recipients"], row["id"]
    )
    return _render(
        request,
        "hold.html",
        status=status,
        session=session,
        hold=hold,
        row=row,
        recipients=hold["recipients"],
        reasons=_reasons(row, profiles),
        runs=fixed_and_varying(row["text"], others),
        copies=len(copies),
        pending_copies=pending_copies,
        campaign_recipients=campaign_recipients[:30],
        earlier=[
            {"text": e["sent_text"] or e["text"], "status": e["status"], "at": e["created_at"]}
            for e in earlier
        ],
        history=history(row),
        presets=present.REJECT_PRESETS,
        error=error,
        text=row["text"] if text is None else text,
        message=_notice(request.query.get("m")),
        back=_back(request.query),
        version=await ctx.store.inbox.version(),
    )


async def _campaign(
    store: Store, row: dict[str, Any]
) -> tuple[list[dict[str, Any]], int, list[str]]:
    """The held copies of this hold's campaign, how many still wait, and their recipients."""
    if not row.get("template_id"):
        return [], 0, []
    copies = await store.inbox.campaign(row["template_id"])
    pending = len(await store.inbox.pending_ids(row["template_id"]))
    profiles = await store.profiles.for_holds(copies)
    recipients = [present.short_name(p) for c in copies for p in profiles.get(c["id"], [])]
    return copies, pending, recipients


def _reasons(row: dict[str, Any], profiles: list[Any]) -> list[dict[str, Any]]:
    """Why it was held, one entry per policy that had an opinion, in plain words."""
    return [
        {
            "label": present.policy_label(m["policy"]),
            "sentence": present.policy_sentence(m["policy"]),
            "detail": present.reason_text(m, profiles),
            "shadow": m.get("mode") == "shadow",
        }
        for m in row["policies"]
    ]


async def approve(request: web.Request) -> web.Response:
    session = await _session(request)
    form = await _form(request, session)
    hold_id = request.match_info["id"]
    ctx = _ctx(request)
    text = _field(form, "text", MAX_TEXT + 1)
    if text is not None and len(text) > MAX_TEXT:
        return await _hold_response(
            request, session, hold_id, 422, f"The text is longer than {MAX_TEXT} characters."
        )
    row = await ctx.store.holds.get(hold_id) if _HOLD_ID.fullmatch(hold_id) else None
    if row is None:
        return _render(request, "missing.html", status=404, session=session)
    edited = (
        text if text is not None and text != row["text"].replace("\r\n", "\n").strip() else None
    )
    try:
        await actions.approve(
            ctx.holds, hold_id, session.name, edited, _field(form, "note", MAX_NOTE)
        )
    except HoldNotPending:
        raise web.HTTPSeeOther(f"/review/holds/{hold_id}?m=taken") from None
    except Unprocessable as exc:
        return await _hold_response(request, session, hold_id, 422, exc.detail, text)
    raise web.HTTPSeeOther(_with_message(_back(form), "approved"))


async def reject(request: web.Request) -> web.Response:
    session = await _session(request)
    form = await _form(request, session)
    hold_id = request.match_info["id"]
    reason = _field(form, "reason", MAX_REASON)
    if reason is None:
        return await _hold_response(
            request, session, hold_id, 422, "Say why you reject it: pick a reason or write one."
        )
    try:
        await actions.reject(
            _ctx(request).holds, hold_id, session.name, reason, _field(form, "note", MAX_NOTE)
        )
    except HoldNotPending:
        raise web.HTTPSeeOther(f"/review/holds/{hold_id}?m=taken") from None
    except NotFound:
        return _render(request, "missing.html", status=404, session=session)
    raise web.HTTPSeeOther(_with_message(_back(form), "rejected"))


async def reject_campaign(request: web.Request) -> web.Response:
    """Two steps: the count of pending copies is shown, then confirmed (the count the
    reviewer saw must still be the count: otherwise it is shown again)."""
    session = await _session(request)
    form = await _form(request, session)
    ctx = _ctx(request)
    template_id = request.match_info["id"]
    if not _TEMPLATE_ID.fullmatch(template_id):
        return _render(request, "missing.html", status=404, session=session)
    reason = _field(form, "reason", MAX_REASON)
    pending = await ctx.store.inbox.pending_ids(template_id)
    copies = await ctx.store.inbox.campaign(template_id, limit=1)
    if reason is None or form.get("confirm") != str(len(pending)):
        return _render(
            request,
            "confirm_campaign.html",
            status=422 if reason is None else 200,
            session=session,
            template_id=template_id,
            count=len(pending),
            reason=reason,
            sample=copies[0]["text"] if copies else "",
            presets=present.REJECT_PRESETS,
            back=_back(form),
            note=_field(form, "note", MAX_NOTE),
        )
    n = await actions.reject_campaign(
        ctx.holds, ctx.store, template_id, session.name, reason, _field(form, "note", MAX_NOTE)
    )
    raise web.HTTPSeeOther(_with_message("/review/inbox", f"campaign-{n}"))


async def bulk(request: web.Request) -> web.Response:
    """The selected holds (x), approved or rejected together."""
    session = await _session(request)
    form = await _form(request, session)
    ctx = _ctx(request)
    ids = [i for i in form.getall("hold", []) if isinstance(i, str) and _HOLD_ID.fullmatch(i)]
    action = form.get("action")
    reason = _field(form, "reason", MAX_REASON)
    done = 0
    for hold_id in ids[:PAGE]:
        try:
            if action == "approve":
                await actions.approve(ctx.holds, hold_id, session.name, None)
            elif action == "reject" and reason:
                await actions.reject(ctx.holds, hold_id, session.name, reason)
            else:
                break
        except (HoldNotPending, NotFound, Unprocessable):
            continue
        done += 1
    raise web.HTTPSeeOther(_with_message(_back(form), f"bulk-{done}"))


# The notices a page shows after an action (`?m=`): a fixed word, or a count after
# `campaign-`/`bulk-`. Anything else in a link is ignored: a page must not show words a
# stranger put in a URL as dmgate's own.
_NOTICE = re.compile(r"approved|rejected|taken|(?:campaign|bulk)-[0-9]{1,9}")


def _notice(value: str | None) -> str | None:
    return value if value is not None and _NOTICE.fullmatch(value) else None


def _with_message(url: str, message: str) -> str:
    url = re.sub(r"([?&])m=[^&]*&?", r"\1", url).rstrip("?&")
    return f"{url}{'&' if '?' in url else '?'}m={message}"


async def live(request: web.Request) -> web.Response:
    """What the page script polls: a version that changes when holds arrive or are
    decided (and the state of one hold, on its page)."""
    if await sessions.current(request) is None:
        return web.json_response({"signed_in": False}, status=401)
    ctx = _ctx(request)
    out: dict[str, Any] = {"version": await ctx.store.inbox.version()}
    hold_id = request.query.get("hold")
    if hold_id and _HOLD_ID.fullmatch(hold_id):
        row = await ctx.store.holds.get(hold_id)
        if row is not None:
            out["status"] = row["status"]
            out["claimed"] = row["claimed_at"] is not None
    return web.json_response(out)


def create_app() -> web.Application:
    """The `/review` sub-application (mounted by `proxy.app.build_app`)."""
    app = web.Application(middlewares=[security_headers])
    app[JINJA] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app[JINJA].filters["ts"] = present.when
    r = app.router
    r.add_get("/", root)
    r.add_get("/signin", signin_page)
    r.add_post("/signin", signin)
    r.add_post("/signout", signout)
    r.add_get("/inbox", inbox)
    r.add_get("/live", live)
    r.add_post("/bulk", bulk)
    r.add_get("/holds/{id}", hold_page)
    r.add_post("/holds/{id}/approve", approve)
    r.add_post("/holds/{id}/reject", reject)
    r.add_post("/campaigns/{id}/reject", reject_campaign)
    r.add_static("/static", HERE / "static", append_version=False)
    return app


def add_routes(app: web.Application) -> None:
    """`/review` and everything under it (before the proxy's catch-all route)."""
    app.router.add_get("/review", root)
    app.add_subapp("/review", create_app())
