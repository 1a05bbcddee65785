"""A fake LinkedIn upstream (official Messages API and Voyager messaging) for end-to-end
tests. One server answers both hosts' paths, so `linkedin` and `linkedin-web` routes can
both point at it.

Shapes: the official Messages API page (learn.microsoft.com/linkedin/shared/integrations/
communications/messages: `recipients` Person URNs XOR `thread`, `body`) and Rest.li's create
answer (201, id in `x-restli-id`); Voyager as tomquirk/linkedin-api sends and reads it
(`linkedin_api/linkedin.py`: `send_message`, `get_conversations`, `get_user_profile`):
cookie `li_at` + `JSESSIONID`, `csrf-token` header equal to JSESSIONID, JSON bodies with
no Content-Type, 201 on a send.

    with FakeLinkedInThread() as li:
        li.state.add_member("ACoAA1", person_id="p1", token="tok", li_at="cookie")
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeAppThread, Recorded

MESSAGE_CREATE = "com.linkedin.voyager.messaging.create.MessageCreate"
MESSAGING_MEMBER = "com.linkedin.voyager.messaging.MessagingMember"
PERSON = "urn:li:person:"
THREAD = "urn:li:messagingThread:"


@dataclass
class Member:
    profile_id: str  # Voyager's ACoAA… id
    person_id: str  # the official API's person id
    first: str
    last: str
    plain_id: int


@dataclass
class Sent:
    api: str  # "official" | "voyager"
    sender: str  # profile id (voyager) or person id (official)
    recipients: tuple[str, ...]
    text: str
    conversation: str


@dataclass
class Invitation:
    api: str  # "voyager-dash" | "voyager-norm" | "sales"
    sender: str  # profile id
    invitee: str  # profile id (Sales Navigator: the lead's id as sent)
    note: str  # "" without a note


@dataclass
class Conversation:
    id: str
    members: tuple[str, ...]  # profile ids
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeLinkedIn:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.members: dict[str, Member] = {}  # by profile id
        self.by_token: dict[str, Member] = {}
        self.by_cookie: dict[str, Member] = {}
        self.conversations: dict[str, Conversation] = {}
        self.sent: list[Sent] = []
        self.invitations: list[Invitation] = []
        self._ids = itertools.count(1000)

    # --- helpers for tests -------------------------------------------------------------

    def add_member(
        self,
        profile_id: str,
        person_id: str | None = None,
        first: str = "Member",
        last: str | None = None,
        token: str | None = None,
        li_at: str | None = None,
    ) -> Member:
        member = Member(
            profile_id, person_id or f"p-{profile_id}", first, last or profile_id, next(self._ids)
        )
        self.members[profile_id] = member
        if token:
            self.by_token[token] = member
        if li_at:
            self.by_cookie[li_at] = member
        return member

    def add_conversation(self, members: tuple[str, ...], text: str = "", sender: str = "") -> str:
        cid = f"2-conv{next(self._ids)}"
        conversation = Conversation(cid, members)
        if text:
            conversation.events.append(self._event(sender or members[0], text))
        self.conversations[cid] = conversation
        return cid

    def _event(self, sender: str, text: str) -> dict[str, Any]:
        member = self.members.get(sender) or Member(sender, sender, "Member", sender, 0)
        return {
            "createdAt": int(time.time() * 1000),
            "subtype": "MEMBER_TO_MEMBER",
            "from": {MESSAGING_MEMBER: {"miniProfile": _mini(member)}},
            "eventContent": {
                "com.linkedin.voyager.messaging.event.MessageEvent": {
                    "attributedBody": {"text": text, "attributes": []}
                }
            },
        }

    # --- the application ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        r = app.router
        r.add_post("/v2/messages", self._official_send)
        r.add_post("/rest/messages", self._official_send)
        r.add_post("/v2/invitations", self._official_invite)
        r.add_get("/v2/me", self._official_me)
        r.add_get("/voyager/api/me", self._voyager_me)
        r.add_post("/voyager/api/messaging/conversations", self._voyager_create)
        r.add_get("/voyager/api/messaging/conversations", self._voyager_list)
        r.add_post("/voyager/api/messaging/conversations/{id}/events", self._voyager_event)
        r.add_post("/voyager/api/voyagerMessagingDashMessengerMessages", self._dash_send)
        r.add_post("/voyager/api/voyagerRelationshipsDashMemberRelationships", self._dash_invite)
        r.add_post("/voyager/api/growth/normInvitations", self._norm_invite)
        r.add_post("/sales-api/salesApiConnection", self._sales_connect)
        r.add_post("/sales-api/salesApiMessageActions", self._sales_message)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded.of(request, body))
        return await handler(request)

    # --- official API ------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> Member | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return self.by_token.get(token.strip()) if scheme.lower() == "bearer" else None

    async def _official_me(self, request: web.Request) -> web.Response:
        member = self._bearer(request)
        if member is None:
            return _restli_error(401, 65600, "INVALID_ACCESS_TOKEN", "Invalid access token")
        return web.json_response(
            {
                "id": member.person_id,
                "localizedFirstName": member.first,
                "localizedLastName": member.last,
            }
        )

    async def _official_send(self, request: web.Request) -> web.Response:
        member = self._bearer(request)
        if member is None:
            return _restli_error(401, 65600, "INVALID_ACCESS_TOKEN", "Invalid access token")
        if request.content_type != "application/json":
            return _restli_error(415, 0, "UNSUPPORTED_MEDIA_TYPE", "JSON bodies only")
        try:
            doc = json.loads(await request.read())
        except ValueError:
            return _restli_error(400, 100, "ILLEGAL_ARGUMENT", "Unable to parse JSON")
        if not isinstance(doc, dict) or not isinstance(doc.get("body"), str):
            return _restli_error(400, 100, "FIELD_VALUE_MISSING", "/body is required")
        recipients, thread = doc.get("recipients"), doc.get("thread")
        if (recipients is None) == (thread is None):
            return _restli_error(400, 100, "ILLEGAL_ARGUMENT", "recipients XOR thread")
        if recipients is not None:
            if not isinstance(recipients, list) or not all(
                isinstance(r, str) and r.startswith(PERSON) for r in recipients
            ):
                return _restli_error(400, 100, "ILLEGAL_ARGUMENT", "recipients: Person URNs")
            people = tuple(r.removeprefix(PERSON) for r in recipients)
            conversation = f"2-thread{next(self._ids)}"
        else:
            if not isinstance(thread, str) or not thread.startswith(THREAD):
                return _restli_error(400, 100, "ILLEGAL_ARGUMENT", "thread: a thread URN")
            people, conversation = (), thread.removeprefix(THREAD)
        self.sent.append(Sent("official", member.person_id, people, doc["body"], conversation))
        message_id = f"2-msg{next(self._ids)}"
        return web.Response(status=201, headers={"x-restli-id": message_id})

    async def _official_invite(self, request: web.Request) -> web.Response:
        """The partner API's connection request: `{"invitee": "urn:li:person:…",
        "message": {"com.linkedin.invitations.InvitationMessage": {"body": …}}}`, 201."""
        member = self._bearer(request)
        if member is None:
            return _restli_error(401, 65600, "INVALID_ACCESS_TOKEN", "Invalid access token")
        try:
            doc = json.loads(await request.read())
        except ValueError:
            return _restli_error(400, 100, "ILLEGAL_ARGUMENT", "Unable to parse JSON")
        invitee = doc.get("invitee") if isinstance(doc, dict) else None
        if not isinstance(invitee, str) or not invitee.startswith(PERSON):
            return _restli_error(400, 100, "ILLEGAL_ARGUMENT", "invitee: a Person URN")
        message = doc.get("message") or {}
        note = message.get("com.linkedin.invitations.InvitationMessage", {}).get("body", "")
        self.invitations.append(
            Invitation("official", member.person_id, invitee.removeprefix(PERSON), note)
        )
        return web.Response(status=201, headers={"x-restli-id": f"inv{next(self._ids)}"})

    # --- Voyager -----------------------------------------------------------------------

    def _session(self, request: web.Request) -> Member | web.Response:
        member = self.by_cookie.get(request.cookies.get("li_at", ""))
        if member is None:
            return web.json_response({"status": 401}, status=401)
        # LinkedIn's CSRF check: the header must repeat the JSESSIONID cookie.
        jsession = request.cookies.get("JSESSIONID", "").strip('"')
        if not jsession or request.headers.get("csrf-token") != jsession:
            return web.json_response({"status": 403, "message": "CSRF check failed"}, status=403)
        return member

    async def _voyager_me(self, request: web.Request) -> web.Response:
        member = self._session(request)
        if isinstance(member, web.Response):
            return member
        return web.json_response(
            {
                "plainId": member.plain_id,
                "miniProfile": _mini(member),
                "publicContactInfo": {},
                "premiumSubscriber": False,
            }
        )

    async def _voyager_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        # Voyager parses JSON whatever the Content-Type says (tomquirk sends none).
        try:
            doc = json.loads(await request.read())
        except ValueError:
            return web.json_response({"status": 400, "message": "bad JSON"}, status=400)
        if not isinstance(doc, dict):
            return web.json_response({"status": 400, "message": "bad JSON"}, status=400)
        return doc

    def _voyager_text(self, event_create: Any) -> str | None:
        try:
            create = event_create["value"][MESSAGE_CREATE]
            text = create["attributedBody"]["text"]
        except (KeyError, TypeError):
            return None
        return text if isinstance(text, str) else None

    async def _voyager_create(self, request: web.Request) -> web.Response:
        if request.query.get("action") != "create":
            return web.json_response({"status": 400, "message": "unknown action"}, status=400)
        member = self._session(request)
        if isinstance(member, web.Response):
            return member
        doc = await self._voyager_body(request)
        if isinstance(doc, web.Response):
            return doc
        create = doc.get("conversationCreate") or {}
        recipients = create.get("recipients")
        text = self._voyager_text(create.get("eventCreate"))
        if not isinstance(recipients, list) or not recipients or text is None:
            return web.json_response({"status": 400, "message": "bad create"}, status=400)
        people = tuple(str(r).rsplit(":", 1)[-1] for r in recipients)
        cid = self.add_conversation((member.profile_id, *people))
        return self._deliver(member, cid, people, text)

    async def _voyager_event(self, request: web.Request) -> web.Response:
        if request.query.get("action") != "create":
            return web.json_response({"status": 400, "message": "unknown action"}, status=400)
        member = self._session(request)
        if isinstance(member, web.Response):
            return member
        conversation = self.conversations.get(request.match_info["id"])
        if conversation is None or member.profile_id not in conversation.members:
            return web.json_response({"status": 404}, status=404)
        doc = await self._voyager_body(request)
        if isinstance(doc, web.Response):
            return doc
        text = self._voyager_text(doc.get("eventCreate"))
        if text is None:
            return web.json_response({"status": 400, "message": "bad event"}, status=400)
        others = tuple(m for m in conversation.members if m != member.profile_id)
        return self._deliver(member, conversation.id, others, text)

    def _deliver(
        self, member: Member, cid: str, people: tuple[str, ...], text: str
    ) -> web.Response:
        self.sent.append(Sent("voyager", member.profile_id, people, text, cid))
        self.conversations[cid].events.append(self._event(member.profile_id, text))
        event = f"5-ev{next(self._ids)}"
        value = {
            "eventUrn": f"urn:li:fs_event:({cid},{event})",
            "backendEventUrn": f"urn:li:messagingMessage:{event}",
            "conversationUrn": f"urn:li:fs_conversation:{cid}",
            "backendConversationUrn": f"urn:li:messagingThread:{cid}",
            "createdAt": int(time.time() * 1000),
        }
        return web.json_response({"value": value}, status=201)

    async def _dash_send(self, request: web.Request) -> web.Response:
        """The messenger endpoint LinkedIn's web client uses: the mailbox must be the
        caller's; a new conversation names `hostRecipientUrns`, a reply the conversation."""
        if request.query.get("action") != "createMessage":
            return web.json_response({"status": 400, "message": "unknown action"}, status=400)
        member = self._session(request)
        if isinstance(member, web.Response):
            return member
        doc = await self._voyager_body(request)
        if isinstance(doc, web.Response):
            return doc
        message = doc.get("message") or {}
        text = (message.get("body") or {}).get("text")
        mailbox = f"urn:li:fsd_profile:{member.profile_id}"
        if doc.get("mailboxUrn") != mailbox or not isinstance(text, str):
            return web.json_response({"status": 400, "message": "bad message"}, status=400)
        if doc.get("hostRecipientUrns"):
            people = tuple(str(r).rsplit(":", 1)[-1] for r in doc["hostRecipientUrns"])
            cid = self.add_conversation((member.profile_id, *people))
        else:
            urn = str(message.get("conversationUrn", ""))
            cid = urn.rsplit(",", 1)[-1].rstrip(")")
            if cid not in self.conversations:
                return web.json_response({"status": 404}, status=404)
            people = tuple(m for m in self.conversations[cid].members if m != member.profile_id)
        self.sent.append(Sent("voyager-dash", member.profile_id, people, text, cid))
        self.conversations[cid].events.append(self._event(member.profile_id, text))
        value = {
            "entityUrn": f"urn:li:msg_message:({mailbox},2-msg{next(self._ids)})",
            "conversationUrn": f"urn:li:msg_conversation:({mailbox},{cid})",
            "deliveredAt": int(time.time() * 1000),
            "body": {"text": text, "attributes": []},
        }
        return web.json_response({"value": value})

    # --- invitations and Sales Navigator ----------------------------------------------

    async def _session_body(
        self, request: web.Request, action: str | None
    ) -> tuple[Member, dict[str, Any]] | web.Response:
        if action is not None and request.query.get("action") != action:
            return web.json_response({"status": 400, "message": "unknown action"}, status=400)
        member = self._session(request)
        if isinstance(member, web.Response):
            return member
        doc = await self._voyager_body(request)
        if isinstance(doc, web.Response):
            return doc
        return member, doc

    def _invite(self, api: str, member: Member, invitee: Any, note: Any) -> web.Response | None:
        if not isinstance(invitee, str) or not invitee or not isinstance(note, str):
            return web.json_response({"status": 400, "message": "bad invitation"}, status=400)
        invitee = invitee.rsplit(":", 1)[-1]
        self.invitations.append(Invitation(api, member.profile_id, invitee, note))
        return None

    async def _dash_invite(self, request: web.Request) -> web.Response:
        """`verifyQuotaAndCreateV2`: 200 with the `InvitationCreationResult` (normalized:
        `data` + `included`), as LinkedIn answers the web client."""
        got = await self._session_body(request, "verifyQuotaAndCreateV2")
        if isinstance(got, web.Response):
            return got
        member, doc = got
        union = ((doc.get("invitee") or {}).get("inviteeUnion")) or {}
        error = self._invite(
            "voyager-dash", member, union.get("memberProfile"), doc.get("customMessage", "")
        )
        if error is not None:
            return error
        urn = f"urn:li:fsd_invitation:{next(self._ids)}"
        value = {
            "invitationUrn": urn,
            "*invitation": urn,
            "$type": "com.linkedin.voyager.dash.relationships.invitation.InvitationCreationResult",
        }
        return web.json_response(
            {
                "data": {"value": value, "$type": "com.linkedin.restli.common.ActionResponse"},
                "included": [{"entityUrn": urn}],
            }
        )

    async def _norm_invite(self, request: web.Request) -> web.Response:
        """The legacy Rest.li create: 201, the invitation's id in `x-restli-id`."""
        got = await self._session_body(request, None)
        if isinstance(got, web.Response):
            return got
        member, doc = got
        profile = (doc.get("invitee") or {}).get(
            "com.linkedin.voyager.growth.invitation.InviteeProfile"
        ) or {}
        error = self._invite(
            "voyager-norm", member, profile.get("profileId"), doc.get("message", "")
        )
        if error is not None:
            return error
        return web.Response(
            status=201, headers={"x-restli-id": f"urn:li:fs_relInvitation:{next(self._ids)}"}
        )

    async def _sales_connect(self, request: web.Request) -> web.Response:
        got = await self._session_body(request, "connectV2")
        if isinstance(got, web.Response):
            return got
        member, doc = got
        error = self._invite("sales", member, doc.get("member"), doc.get("message", ""))
        return error or web.json_response({})

    async def _sales_message(self, request: web.Request) -> web.Response:
        """Sales Navigator messages and InMail: 200 with the message and thread ids."""
        got = await self._session_body(request, "createMessage")
        if isinstance(got, web.Response):
            return got
        member, doc = got
        req = doc.get("createMessageRequest") or {}
        body, subject = req.get("body"), req.get("subject")
        if not isinstance(body, str) or not isinstance(req.get("recipients"), list):
            return web.json_response({"status": 400, "message": "bad message"}, status=400)
        people = tuple(str(r).split("(", 1)[-1].split(",", 1)[0] for r in req["recipients"])
        text = f"{subject}\n\n{body}" if subject else body
        thread = f"2-sales{next(self._ids)}"
        self.sent.append(Sent("sales", member.profile_id, people, text, thread))
        value = {"messageId": f"2-msg{next(self._ids)}", "threadId": thread}
        return web.json_response({"value": value})

    async def _voyager_list(self, request: web.Request) -> web.Response:
        member = self._session(request)
        if isinstance(member, web.Response):
            return member
        elements = []
        for conv in self.conversations.values():
            if member.profile_id not in conv.members:
                continue
            others = [self.members.get(m) for m in conv.members if m != member.profile_id]
            elements.append(
                {
                    "entityUrn": f"urn:li:fs_conversation:{conv.id}",
                    "groupChat": len(others) > 1,
                    "participants": [
                        {MESSAGING_MEMBER: {"miniProfile": _mini(o)}} for o in others if o
                    ],
                    "events": conv.events[-1:],
                }
            )
        return web.json_response({"elements": elements, "paging": {"count": len(elements)}})


def _mini(member: Member) -> dict[str, Any]:
    return {
        "$type": "com.linkedin.voyager.identity.shared.MiniProfile",
        "entityUrn": f"urn:li:fs_miniProfile:{member.profile_id}",
        "objectUrn": f"urn:li:member:{member.plain_id}",
        "firstName": member.first,
        "lastName": member.last,
        "publicIdentifier": f"{member.first}-{member.last}".lower(),
    }


def _restli_error(status: int, service_code: int, code: str, message: str) -> web.Response:
    doc = {"status": status, "serviceErrorCode": service_code, "code": code, "message": message}
    return web.json_response(doc, status=status)


class FakeLinkedInThread(FakeAppThread):
    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(FakeLinkedIn(), host)
        self.state: FakeLinkedIn
