"""The OpenAPI 3 document of the review API, served at `/api/openapi.json`.

Kept beside the handlers it describes (`proxy/review.py`); a test calls every documented
operation and checks the answers against these schemas.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_HOLD = {"$ref": "#/components/schemas/Hold"}


def _resp(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_UNAUTHORIZED = _resp("Missing or invalid bearer token", _ERROR)
_NOT_FOUND = _resp("No such hold", _ERROR)
_CONFLICT = _resp("The hold is not pending (already decided, expired or being released)", _ERROR)
_HOLD_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_NULLABLE_STR = {"type": ["string", "null"]}
_TS = {"type": ["string", "null"], "format": "date-time"}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "dmgate review API",
        "version": "1",
        "description": "Review direct messages that dmgate held: approve (optionally with "
        "edited text) to send them exactly once, or reject with a reason.",
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
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "`next_cursor` of the previous page",
                    },
                ],
                "responses": {
                    "200": _resp(
                        "A page of holds",
                        {
                            "type": "object",
                            "required": ["items", "next_cursor"],
                            "properties": {
                                "items": {"type": "array", "items": _HOLD},
                                "next_cursor": _NULLABLE_STR,
                            },
                        },
                    ),
                    "400": _resp("Bad query parameter", _ERROR),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/api/v1/holds/{id}": {
            "get": {
                "operationId": "getHold",
                "summary": "One hold",
                "parameters": [_HOLD_ID],
                "responses": {
                    "200": _resp("The hold", _HOLD),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                },
            }
        },
        "/api/v1/holds/{id}/approve": {
            "post": {
                "operationId": "approveHold",
                "summary": "Approve: send the DM upstream exactly once",
                "parameters": [_HOLD_ID],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "text": {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": 10000,
                                        "description": "Send this text instead of the held one",
                                    },
                                    "note": {"type": "string", "maxLength": 2000},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _resp(
                        "Released: `sent`, or `send_failed` with the upstream's answer", _HOLD
                    ),
                    "400": _resp("Malformed body", _ERROR),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                    "422": _resp("Invalid body", _ERROR),
                },
            }
        },
        "/api/v1/holds/{id}/reject": {
            "post": {
                "operationId": "rejectHold",
                "summary": "Reject: the DM is never sent",
                "parameters": [_HOLD_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["reason"],
                                "properties": {
                                    "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
                                    "note": {"type": "string", "maxLength": 2000},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _resp("Rejected", _HOLD),
                    "400": _resp("Malformed body", _ERROR),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                    "422": _resp("No reason given", _ERROR),
                },
            }
        },
        "/api/v1/follow-events": {
            "post": {
                "operationId": "reportFollow",
                "summary": "Report that `follower` followed `account` (default: now)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["platform", "account", "follower"],
                                "properties": {
                                    "platform": {"type": "string", "examples": ["x"]},
                                    "account": {"type": "string"},
                                    "follower": {"type": "string"},
                                    "followed_at": {"type": "string", "format": "date-time"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _resp(
                        "Recorded",
                        {
                            "type": "object",
                            "required": ["platform", "account", "follower", "followed_at"],
                            "properties": {
                                k: {"type": "string"}
                                for k in ("platform", "account", "follower", "followed_at")
                            },
                        },
                    ),
                    "400": _resp("Malformed body", _ERROR),
                    "401": _UNAUTHORIZED,
                    "422": _resp("Invalid body", _ERROR),
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
                    "id": {"type": "string"},
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
                    "created_at": {"type": "string", "format": "date-time"},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "decided_at": _TS,
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
        },
    },
}
