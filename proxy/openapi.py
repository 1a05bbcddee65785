"""The OpenAPI 3 document of the review API, served at `/api/openapi.json`.

Kept beside the handlers it describes (`proxy/review.py`), which validate with the limits
defined here, so the document and the server cannot drift apart. Tests call every
documented operation and check the answers against these schemas, and run schemathesis
against the running server (`tests/integration/test_review_api_schemathesis.py`).

The unauthenticated operational endpoints (`/healthz`, `/readyz`, `/metrics`) are not part
of this API and not in the document.
"""

from __future__ import annotations

from typing import Any

# Hold ids (and so cursors) are `proxy.ids.new_id()`: 32 lowercase hex digits.
HOLD_ID_PATTERN = "^[0-9a-f]{32}$"
# Campaign (template) ids: opaque, short, URL-safe.
TEMPLATE_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_TEXT = 10000
MAX_NOTE = 2000
MAX_REASON = 2000
MAX_PLATFORM = 32
MAX_USER_ID = 128  # account and follower ids: the store's column width
# Far more than the longest valid body (10000 characters of text, each up to 12 bytes as
# a JSON escape, and a note); anything larger is refused unread.
MAX_BODY = 256 * 1024
# Every character str.strip() removes (str.isspace(); none lies above U+3000): a reason or
# text made only of these is no reason or text at all.
SPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
# PostgreSQL text cannot hold NUL, so no string the store keeps may contain one. Written
# with \\u escapes, which ECMA 262 (OpenAPI), Python and Rust regular expressions all read.
_NUL = "\\u0000"
_SPACE_CLASS = "".join(f"\\u{ord(c):04x}" for c in SPACE)
NO_NUL_PATTERN = f"^[^{_NUL}]*$"
NOT_BLANK_PATTERN = f"^[^{_NUL}]*[^{_NUL}{_SPACE_CLASS}][^{_NUL}]*$"

_ERROR = {"$ref": "#/components/schemas/Error"}
_HOLD = {"$ref": "#/components/schemas/Hold"}


def _json(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _error(description: str, code: str, schema: dict[str, Any] = _ERROR) -> dict[str, Any]:
    """A response with dmgate's error body whose `error` is `code`."""
    return _json(description, {"allOf": [schema, {"properties": {"error": {"const": code}}}]})


def _string(max_length: int, *, required: bool = True, nullable: bool = False) -> dict[str, Any]:
    """A string field of a request body: `required` ones must not be blank."""
    return {
        "type": ["string", "null"] if nullable else "string",
        "maxLength": max_length,
        **(
            {"minLength": 1, "pattern": NOT_BLANK_PATTERN}
            if required
            else {"pattern": NO_NUL_PATTERN}
        ),
    }


_BAD_REQUEST = _error(
    "Malformed request: not UTF-8 JSON, not an object, unknown or wrongly typed fields, "
    "values out of range",
    "bad_request",
)
_UNAUTHORIZED = _error(
    "Missing or invalid bearer token",
    "unauthorized",
) | {
    "headers": {
        "WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"},
    }
}
_NOT_FOUND = _error("No such hold", "not_found")
_CONFLICT = _error(
    "The hold is not pending (already decided, expired or being released)",
    "conflict",
    {"$ref": "#/components/schemas/ConflictError"},
)
_TOO_LARGE = _error(f"Body larger than {MAX_BODY} bytes", "payload_too_large")
_STORE_UNAVAILABLE = _error(
    "dmgate's store (database) is unreachable or locked; nothing was changed. Retry later.",
    "store_unavailable",
)
_HOLD_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": HOLD_ID_PATTERN},
}
_NULLABLE_STR = {"type": ["string", "null"]}
_TS = {"type": "string", "format": "date-time"}
_NULLABLE_TS = {"type": ["string", "null"], "format": "date-time"}


def _body(schema: dict[str, Any], required: bool) -> dict[str, Any]:
    return {
        "required": required,
        "content": {"application/json": {"schema": {"type": "object", **schema}}},
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "dmgate review API",
        "version": "1",
        "description": "Review direct messages that dmgate held: approve (optionally with "
        "edited text) to send them exactly once, or reject with a reason. Every error is "
        'JSON naming dmgate: `{"error": code, "detail": text, "source": "dmgate"}`.',
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/holds": {
            "get": {
                "operationId": "listHolds",
                "summary": "List holds, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"$ref": "#/components/schemas/HoldStatus"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE,
                            "default": DEFAULT_PAGE,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "pattern": HOLD_ID_PATTERN},
                        "description": "`next_cursor` of the previous page",
                    },
                ],
                "responses": {
                    "200": _json(
                        "A page of holds",
                        {
                            "type": "object",
                            "required": ["items", "next_cursor"],
                            "properties": {
                                "items": {"type": "array", "items": _HOLD},
                                "next_cursor": {
                                    "type": ["string", "null"],
                                    "pattern": HOLD_ID_PATTERN,
                                },
                            },
                        },
                    ),
                    "400": _BAD_REQUEST,
                    "401": _UNAUTHORIZED,
                    "503": _STORE_UNAVAILABLE,
                },
            }
        },
        "/api/v1/holds/{id}": {
            "get": {
                "operationId": "getHold",
                "summary": "One hold",
                "parameters": [_HOLD_ID],
                "responses": {
                    "200": _json("The hold", _HOLD),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "503": _STORE_UNAVAILABLE,
                },
            }
        },
        "/api/v1/holds/{id}/approve": {
            "post": {
                "operationId": "approveHold",
                "summary": "Approve: send the DM upstream exactly once",
                "parameters": [_HOLD_ID],
                "requestBody": _body(
                    {
                        "additionalProperties": False,
                        "properties": {
                            "text": {
                                **_string(MAX_TEXT, nullable=True),
                                "description": "Send this text instead of the held one",
                            },
                            "note": _string(MAX_NOTE, required=False, nullable=True),
                        },
                    },
                    required=False,
                ),
                "responses": {
                    "200": _json(
                        "Released: `sent`, or `send_failed` with the upstream's answer", _HOLD
                    ),
                    "400": _BAD_REQUEST,
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                    "413": _TOO_LARGE,
                    "422": _error(
                        "The edited text cannot be sent on this platform", "unprocessable"
                    ),
                    "503": _STORE_UNAVAILABLE,
                },
            }
        },
        "/api/v1/holds/{id}/reject": {
            "post": {
                "operationId": "rejectHold",
                "summary": "Reject: the DM is never sent",
                "parameters": [_HOLD_ID],
                "requestBody": _body(
                    {
                        "additionalProperties": False,
                        "required": ["reason"],
                        "properties": {
                            "reason": _string(MAX_REASON),
                            "note": _string(MAX_NOTE, required=False, nullable=True),
                        },
                    },
                    required=True,
                ),
                "responses": {
                    "200": _json("Rejected", _HOLD),
                    "400": _BAD_REQUEST,
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                    "413": _TOO_LARGE,
                    "422": _error("No reason given (missing, null or blank)", "unprocessable"),
                    "503": _STORE_UNAVAILABLE,
                },
            }
        },
        "/api/v1/follow-events": {
            "post": {
                "operationId": "reportFollow",
                "summary": "Report that `follower` followed `account` (default: now)",
                "requestBody": _body(
                    {
                        "additionalProperties": False,
                        "required": ["platform", "account", "follower"],
                        "properties": {
                            "platform": {**_string(MAX_PLATFORM), "examples": ["x"]},
                            "account": _string(MAX_USER_ID),
                            "follower": _string(MAX_USER_ID),
                            "followed_at": {
                                **_NULLABLE_TS,
                                "description": "RFC 3339 with a time zone. Times beyond "
                                "what dmgate can store (before year 1 or after 9999 in "
                                "UTC) are recorded as the nearest it can.",
                            },
                        },
                    },
                    required=True,
                ),
                "responses": {
                    "201": _json(
                        "Recorded",
                        {
                            "type": "object",
                            "required": ["platform", "account", "follower", "followed_at"],
                            "properties": {
                                "platform": {"type": "string"},
                                "account": {"type": "string"},
                                "follower": {"type": "string"},
                                "followed_at": _TS,
                            },
                        },
                    ),
                    "400": _BAD_REQUEST,
                    "401": _UNAUTHORIZED,
                    "413": _TOO_LARGE,
                    "503": _STORE_UNAVAILABLE,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "HoldStatus": {
                "type": "string",
                "enum": ["pending", "sent", "send_failed", "rejected", "expired"],
            },
            "PolicyMatch": {
                "type": "object",
                "required": ["policy", "action", "reason"],
                "properties": {
                    "policy": {"type": "string"},
                    "action": {"type": "string", "enum": ["hold", "block"]},
                    "mode": {"type": "string", "enum": ["enforce", "shadow"]},
                    "reason": {"type": "string"},
                },
            },
            "Hold": {
                "type": "object",
                "required": [
                    "id",
                    "status",
                    "platform",
                    "route",
                    "account",
                    "recipients",
                    "text",
                    "policies",
                    "created_at",
                    "expires_at",
                    "decided_at",
                    "decided_by",
                    "note",
                    "upstream_status",
                ],
                "properties": {
                    "id": {"type": "string", "pattern": HOLD_ID_PATTERN},
                    "status": {"$ref": "#/components/schemas/HoldStatus"},
                    "platform": {"type": "string"},
                    "route": {"type": "string"},
                    "account": {"type": "string"},
                    "recipients": {"type": "array", "items": {"type": "string"}},
                    "text": {"type": "string"},
                    "policies": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/PolicyMatch"},
                    },
                    "created_at": _TS,
                    "expires_at": _TS,
                    "decided_at": _NULLABLE_TS,
                    "decided_by": _NULLABLE_STR,
                    "note": _NULLABLE_STR,
                    "reason": {**_NULLABLE_STR, "description": "Why it was rejected"},
                    "sent_text": {**_NULLABLE_STR, "description": "The text actually sent"},
                    "upstream_status": {"type": ["integer", "null"]},
                    "upstream_body": {
                        **_NULLABLE_STR,
                        "description": "Start of the upstream's answer to the release",
                    },
                },
            },
            "Error": {
                "type": "object",
                "required": ["error", "detail", "source"],
                "properties": {
                    "error": {"type": "string"},
                    "detail": {"type": "string"},
                    "source": {"type": "string", "const": "dmgate"},
                },
            },
            "ConflictError": {
                "allOf": [
                    _ERROR,
                    {
                        "type": "object",
                        "required": ["hold"],
                        "properties": {"hold": _HOLD},
                    },
                ],
            },
        },
    },
}


# --- added with the review inbox: campaigns, recipient profiles, history, audit export ---

_HOLD_PROPERTIES = OPENAPI["components"]["schemas"]["Hold"]["properties"]
# Not `required`: a 409's `hold` is the plain hold (proxy.holds), without them.
_HOLD_PROPERTIES["template_id"] = {
    "type": ["string", "null"],
    "pattern": TEMPLATE_ID_PATTERN,
    "description": "The campaign (template) a template_reuse hold belongs to, else null",
}
_HOLD_PROPERTIES["recipient_profiles"] = {
    "type": "array",
    "description": "What dmgate saw of each recipient in traffic that passed through it",
    "items": {"$ref": "#/components/schemas/RecipientProfile"},
}
_HOLD_PROPERTIES["history"] = {
    "type": "array",
    "description": "Held, decided (with edits and reasons), sent: oldest first",
    "items": {"$ref": "#/components/schemas/HistoryStep"},
}
OPENAPI["components"]["schemas"]["RecipientProfile"] = {
    "type": "object",
    "required": ["id", "wrote_first"],
    "properties": {
        "id": {"type": "string"},
        "username": _NULLABLE_STR,
        "name": _NULLABLE_STR,
        "description": _NULLABLE_STR,
        "location": _NULLABLE_STR,
        "followed_at": _NULLABLE_TS,
        "wrote_first": {"type": "boolean"},
    },
}
OPENAPI["components"]["schemas"]["HistoryStep"] = {
    "type": "object",
    "required": ["at", "by", "action"],
    "properties": {
        "at": _NULLABLE_TS,
        "by": _NULLABLE_STR,
        "action": {
            "type": "string",
            "enum": [
                "held",
                "approved",
                "edited_and_approved",
                "rejected",
                "sent",
                "send_failed",
                "expired",
                "releasing",
            ],
        },
        "reason": _NULLABLE_STR,
        "note": _NULLABLE_STR,
        "text_before": _NULLABLE_STR,
        "text_after": _NULLABLE_STR,
    },
}
OPENAPI["paths"]["/api/v1/holds"]["get"]["parameters"].append(
    {
        "name": "template",
        "in": "query",
        "schema": {"type": "string", "pattern": TEMPLATE_ID_PATTERN},
        "description": "Only the holds of this campaign (a hold's `template_id`)",
    }
)
OPENAPI["paths"]["/api/v1/templates/{id}/reject"] = {
    "post": {
        "operationId": "rejectCampaign",
        "summary": "Reject every pending copy of one campaign",
        "parameters": [
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": TEMPLATE_ID_PATTERN},
            }
        ],
        "requestBody": _body(
            {
                "additionalProperties": False,
                "required": ["reason"],
                "properties": {
                    "reason": _string(MAX_REASON),
                    "note": _string(MAX_NOTE, required=False, nullable=True),
                },
            },
            required=True,
        ),
        "responses": {
            "200": _json(
                "How many pending copies were rejected (0 if none, or an unknown campaign)",
                {
                    "type": "object",
                    "required": ["rejected"],
                    "properties": {"rejected": {"type": "integer", "minimum": 0}},
                },
            ),
            "400": _BAD_REQUEST,
            "401": _UNAUTHORIZED,
            "404": _error("Not a campaign id", "not_found"),
            "413": _TOO_LARGE,
            "422": _error("No reason given (missing, null or blank)", "unprocessable"),
            "503": _STORE_UNAVAILABLE,
        },
    }
}
OPENAPI["paths"]["/api/v1/decisions"] = {
    "get": {
        "operationId": "exportDecisions",
        "summary": "Every decision on a hold since `since`, as JSON Lines (audit export)",
        "parameters": [
            {
                "name": "since",
                "in": "query",
                "schema": {"type": "string", "format": "date-time"},
                "description": "RFC 3339 with a time zone; default: all",
            }
        ],
        "responses": {
            "200": {
                "description": "One JSON object per line, in decision order",
                "content": {
                    "application/x-ndjson": {
                        "schema": {"$ref": "#/components/schemas/DecisionRecord"}
                    }
                },
            },
            "400": _BAD_REQUEST,
            "401": _UNAUTHORIZED,
            "503": _STORE_UNAVAILABLE,
        },
    }
}
OPENAPI["components"]["schemas"]["DecisionRecord"] = {
    "type": "object",
    "required": ["hold_id", "at", "by", "action", "status"],
    "properties": {
        "hold_id": {"type": "string", "pattern": HOLD_ID_PATTERN},
        "at": _TS,
        "by": _NULLABLE_STR,
        "action": {"type": "string"},
        "status": {"$ref": "#/components/schemas/HoldStatus"},
        "reason": _NULLABLE_STR,
        "note": _NULLABLE_STR,
        "text_before": _NULLABLE_STR,
        "text_after": _NULLABLE_STR,
        "platform": {"type": "string"},
        "account": {"type": "string"},
        "recipients": {"type": "array", "items": {"type": "string"}},
        "template_id": _NULLABLE_STR,
        "policies": {"type": "array", "items": {"type": ["string", "null"]}},
        "held_at": _TS,
    },
}
