"""Exported DM history, read as a stream of `Record`s, whatever the format.

Formats are told apart by content, never by file name:

- X account archive, `direct-messages.js` / `direct-messages-group.js`: a JavaScript file
  `window.YTD.direct_messages[_group].part0 = [ {"dmConversation": {...}}, ... ]`. Each
  conversation lists `messageCreate` events (`senderId`, `recipientId` (1:1 only), `text`,
  `createdAt`); group conversations also list `joinConversation` / `participantsJoin` /
  `participantsLeave` events naming participants. Read one conversation at a time.
- LinkedIn data export, `messages.csv`: `CONVERSATION ID, CONVERSATION TITLE, FROM, SENDER
  PROFILE URL, TO, RECIPIENT PROFILE URLS, DATE, SUBJECT, CONTENT, FOLDER` (newer exports
  add columns such as `ATTACHMENTS`, `IS MESSAGE DRAFT`); CONTENT spans lines; the header
  may carry a byte-order mark and stray spaces; DATE is `2024-03-05 14:22:31 UTC`.
- Generic JSON Lines or CSV, one event per line: `time` (ISO 8601 or Unix seconds),
  `platform`, `account`, `recipient`, `text`, optional `kind`: `dm` (default: `account`
  sent `text` to `recipient`; several recipients separated by `;` in CSV, a list in JSON),
  `received` (`recipient` wrote `text` to `account`) or `follow` (`recipient` followed
  `account`).

A record says who wrote to whom; whether a message was *sent* (judged) or *received* (the
recipient wrote first) depends on whose account is replayed, decided later (`replay`).
Unreadable input raises `InputError` naming file and line.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

Kind = Literal["message", "follow"]


@dataclass(frozen=True, slots=True)
class Record:
    """One thing that happened: `sender` wrote `text` to `recipients` (kind "message"), or
    `sender` followed `recipients[0]` (kind "follow")."""

    at: datetime
    kind: Kind
    platform: str
    sender: str
    recipients: tuple[str, ...]
    text: str = ""
    # Display names of the recipients (LinkedIn's TO), for template placeholders.
    names: tuple[str, ...] = ()
    # Sender's display name (LinkedIn's FROM), kept as a profile fact.
    sender_name: str = ""
    conversation: str = ""
    # Generic inputs say whether the account sent or received it; exports leave it to
    # whose archive it is (None).
    outbound: bool | None = None
    # Where it came from, for errors and the report: "file:line".
    source: str = ""


class InputError(Exception):
    """An input that cannot be read: names the file and the line."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass
class Skipped:
    """Bad records passed over with --skip-bad, per file (the first few kept for the
    report)."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, error: InputError) -> None:
        self.count += 1
        if len(self.examples) < 20:
            self.examples.append(str(error))


@dataclass
class Participants:
    """Who took part in each conversation, to find the archive's owner: the one
    participant common to every conversation."""

    by_conversation: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def add(self, platform: str, conversation: str, people: set[str]) -> None:
        self.by_conversation.setdefault((platform, conversation), set()).update(people)

    def platforms(self) -> set[str]:
        return {platform for platform, _ in self.by_conversation}

    def owner_candidates(self, platform: str) -> set[str]:
        common: set[str] | None = None
        for (on, _), people in self.by_conversation.items():
            if on == platform:
                common = set(people) if common is None else common & people
        return common or set()


FORMATS = ("x-archive", "linkedin", "jsonl", "csv")

_X_PREFIX = re.compile(r"^\s*window\.YTD\.(direct_messages(?:_group)?)\.part\d+\s*=\s*")
_LINKEDIN_REQUIRED = ("CONVERSATION ID", "FROM", "SENDER PROFILE URL", "DATE", "CONTENT")
_GENERIC_REQUIRED = ("time", "account", "recipient")
_CHUNK = 1 << 20


def detect(path: Path) -> str:
    """The file's format, from its first bytes."""
    try:
        with path.open("rb") as f:
            head = f.read(8192)
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        raise InputError(path, 1, "empty file: no DM history in it")
    if _X_PREFIX.match(text):
        return "x-archive"
    if stripped.startswith("window.YTD."):
        name = stripped.split("=", 1)[0].strip()
        raise InputError(path, 1, f"an X archive file, but not direct messages ({name})")
    if stripped.startswith("{"):
        return "jsonl"
    first = stripped.splitlines()[0] if stripped else ""
    header = {h.strip().strip('"').strip().upper() for h in first.split(",")}
    if all(col in header for col in _LINKEDIN_REQUIRED):
        return "linkedin"
    if all(col.upper() in header for col in _GENERIC_REQUIRED):
        return "csv"
    raise InputError(
        path,
        1,
        "not a known DM export (expected an X archive direct-messages.js, a LinkedIn "
        "messages.csv, or JSON Lines / CSV with time, platform, account, recipient, text)",
    )


def read(
    path: Path, participants: Participants, skipped: Skipped | None = None
) -> Iterator[Record]:
    """Every record of one input file, in file order. With `skipped`, broken records are
    counted there and passed over; without, the first one raises InputError."""
    fmt = detect(path)
    reader = {
        "x-archive": _x_archive,
        "linkedin": _linkedin,
        "jsonl": _jsonl,
        "csv": _generic_csv,
    }[fmt]
    return reader(path, participants, skipped)


# --- X archive -------------------------------------------------------------------------


def _x_archive(path: Path, participants: Participants, skipped: Skipped | None) -> Iterator[Record]:
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        reader = _ArchiveReader(path, f)
        for value, start_line in reader.conversations():
            try:
                yield from _x_conversation(value, path, start_line, reader.group, participants)
            except InputError as exc:
                if skipped is None:
                    raise
                skipped.add(exc)


class _ArchiveReader:
    """The conversations of an X archive file (`window.YTD.… = [ … ]`), one JSON value at a
    time, read in chunks so a large archive never sits in memory whole; line numbers kept
    for errors."""

    def __init__(self, path: Path, f: TextIO) -> None:
        self.path, self._f = path, f
        self.buf = f.read(_CHUNK)
        m = _X_PREFIX.match(self.buf)
        assert m is not None  # detect() saw it
        self.group = m.group(1).endswith("_group")
        self.line = 1 + self.buf.count("\n", 0, m.end())
        self.pos = m.end()
        self._eof = False

    def conversations(self) -> Iterator[tuple[Any, int]]:
        """(conversation, its first line), until the list's closing bracket."""
        self._skip_space()
        if self.pos >= len(self.buf) or self.buf[self.pos] != "[":
            raise InputError(self.path, self.line, "expected '[' after the window.YTD assignment")
        self.pos += 1
        first = True
        while True:
            self._skip_space()
            if self.pos >= len(self.buf):
                raise InputError(
                    self.path, self.line, "truncated archive: the list of conversations never ends"
                )
            if self.buf[self.pos] == "]":
                break
            if not first:
                if self.buf[self.pos] != ",":
                    found = self.buf[self.pos]
                    raise InputError(
                        self.path,
                        self.line,
                        f"expected ',' or ']' between conversations, found {found!r}",
                    )
                self.pos += 1
                self._skip_space()
            first = False
            yield self._value()
        self.pos += 1
        self._skip_space()
        if self.buf[self.pos :].strip().rstrip(";").strip():
            raise InputError(
                self.path, self.line, "unexpected text after the list of conversations"
            )

    def _value(self) -> tuple[Any, int]:
        decoder = json.JSONDecoder()
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
                break
            except json.JSONDecodeError as exc:
                if self._more():  # maybe the conversation goes on in the next chunk
                    continue
                if _unclosed(self.buf, self.pos):
                    last = self.line + self.buf.count("\n", self.pos)
                    raise InputError(
                        self.path,
                        last,
                        "truncated archive: the file ends inside the conversation "
                        f"that starts at line {self.line}",
                    ) from None
                at = self.line + self.buf.count("\n", self.pos, exc.pos)
                raise InputError(self.path, at, f"not valid JSON: {exc.msg}") from None
        start_line = self.line
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end
        return value, start_line

    def _more(self) -> bool:
        if self._eof:
            return False
        chunk = self._f.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def _skip_space(self) -> None:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                if self.buf[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return


def _unclosed(text: str, start: int) -> bool:
    """Whether the JSON value starting at `start` is still open at the end of `text` (a
    cut-off file, as opposed to a syntax error inside it)."""
    depth, in_string, escaped = 0, False, False
    for ch in text[start:]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return False
    return depth > 0 or in_string


def _x_conversation(
    value: Any, path: Path, line: int, group: bool, participants: Participants
) -> Iterator[Record]:
    conv = value.get("dmConversation") if isinstance(value, dict) else None
    if not isinstance(conv, dict) or not isinstance(conv.get("messages"), list):
        raise InputError(path, line, 'expected {"dmConversation": {"messages": [...]}}')
    conv_id = str(conv.get("conversationId", ""))
    people: set[str] = set()
    if not group and "-" in conv_id:
        people.update(p for p in conv_id.split("-") if p)
    created: list[dict[str, Any]] = []
    for event in conv["messages"]:
        if not isinstance(event, dict):
            continue
        for kind, body in event.items():
            if not isinstance(body, dict):
                continue
            if kind == "messageCreate":
                created.append(body)
                people.add(str(body.get("senderId", "")))
                if body.get("recipientId"):
                    people.add(str(body["recipientId"]))
            elif kind == "joinConversation":
                people.update(str(u) for u in body.get("participantsSnapshot") or ())
                if body.get("initiatingUserId"):
                    people.add(str(body["initiatingUserId"]))
            elif kind in ("participantsJoin", "participantsLeave"):
                people.update(str(u) for u in body.get("userIds") or ())
                if body.get("initiatingUserId"):
                    people.add(str(body["initiatingUserId"]))
    people.discard("")
    participants.add("x", conv_id or f"{path}:{line}", people)
    for body in created:
        sender = str(body.get("senderId") or "")
        if not sender or "createdAt" not in body:
            raise InputError(
                path, line, f"conversation {conv_id}: a messageCreate without senderId or createdAt"
            )
        at = _time(body["createdAt"], path, line)
        if group or not body.get("recipientId"):
            recipients = tuple(sorted(people - {sender}))
        else:
            recipients = (str(body["recipientId"]),)
        yield Record(
            at=at,
            kind="message",
            platform="x",
            sender=sender,
            recipients=recipients,
            text=str(body.get("text") or ""),
            conversation=conv_id,
            source=f"{path.name}:{line}",
        )


# --- LinkedIn messages.csv --------------------------------------------------------------


def _linkedin_id(url: str) -> str:
    """A member's stable id from their profile URL: `https://www.linkedin.com/in/ann-lee-1a2b`
    → `ann-lee-1a2b` (the URL itself when it has no /in/ part)."""
    url = url.strip()
    m = re.search(r"/in/([^/?#\s]+)", url)
    return m.group(1) if m else url


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[,;]\s*|\s+(?=https?://)", value) if v.strip()]


def _csv_rows(path: Path, skipped: Skipped | None) -> Iterator[tuple[int, dict[str, str]]]:
    """(first line of the row, row by upper-cased stripped header)."""
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader)
        except csv.Error as exc:
            raise InputError(path, 1, f"unreadable CSV header: {exc}") from None
        names = [h.strip().strip("\ufeff").strip() for h in header]
        last = reader.line_num
        while True:
            start = last + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                error = InputError(path, start, f"broken CSV row: {exc}")
                if skipped is None:
                    raise error from None
                skipped.add(error)
                return  # the reader cannot resynchronise after a broken quote
            last = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                error = InputError(
                    path,
                    start,
                    f"broken CSV row: {len(row)} fields where the header has {len(names)}",
                )
                if skipped is None:
                    raise error
                skipped.add(error)
                continue
            yield start, dict(zip(names, row, strict=True))


def _linkedin(path: Path, participants: Participants, skipped: Skipped | None) -> Iterator[Record]:
    for line, raw in _csv_rows(path, skipped):
        row = {k.upper(): v for k, v in raw.items()}
        try:
            folder = row.get("FOLDER", "").strip().upper()
            draft = row.get("IS MESSAGE DRAFT", "").strip().lower() in ("yes", "true")
            if draft or folder == "DRAFT":
                continue  # never sent
            sender = _linkedin_id(row["SENDER PROFILE URL"])
            if not sender:
                raise InputError(path, line, "a message without SENDER PROFILE URL")
            recipients = tuple(
                dict.fromkeys(
                    _linkedin_id(u) for u in _split_list(row.get("RECIPIENT PROFILE URLS", ""))
                )
            )
            names = tuple(n for n in _split_list(row.get("TO", "")) if n)
            conv = row["CONVERSATION ID"].strip()
            participants.add("linkedin", conv, {sender, *recipients})
            # The body alone, as serve judges a LinkedIn send (its subject is not read).
            text = row["CONTENT"]
            yield Record(
                at=_time(row["DATE"], path, line),
                kind="message",
                platform="linkedin",
                sender=sender,
                recipients=recipients,
                text=text,
                names=names,
                sender_name=row.get("FROM", "").strip(),
                conversation=conv,
                source=f"{path.name}:{line}",
            )
        except InputError as exc:
            if skipped is None:
                raise
            skipped.add(exc)


# --- generic JSONL / CSV ----------------------------------------------------------------


def _generic(obj: dict[str, Any], path: Path, line: int) -> Record:
    def need(key: str) -> str:
        value = obj.get(key)
        if value is None or value == "":
            raise InputError(path, line, f"missing {key!r}")
        return str(value)

    kind = str(obj.get("kind") or "dm").strip().lower()
    if kind not in ("dm", "received", "follow"):
        raise InputError(path, line, f"unknown kind {kind!r} (dm, received or follow)")
    at = _time(obj.get("time"), path, line)
    platform = str(obj.get("platform") or "x").strip().lower()
    account = need("account")
    raw = obj.get("recipient")
    if isinstance(raw, list):
        recipients = tuple(str(r) for r in raw if str(r))
    else:
        recipients = tuple(r.strip() for r in need("recipient").split(";") if r.strip())
    if not recipients:
        raise InputError(path, line, "missing 'recipient'")
    text = str(obj.get("text") or "")
    source = f"{path.name}:{line}"
    if kind == "dm":
        return Record(
            at, "message", platform, account, recipients, text, source=source, outbound=True
        )
    if kind == "received":
        return Record(
            at, "message", platform, recipients[0], (account,), text, source=source, outbound=False
        )
    return Record(at, "follow", platform, recipients[0], (account,), source=source)


def _jsonl(path: Path, participants: Participants, skipped: Skipped | None) -> Iterator[Record]:
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    cut = not raw.endswith("\n")
                    raise InputError(
                        path, line, "truncated line" if cut else f"not valid JSON: {exc.msg}"
                    ) from None
                if not isinstance(obj, dict):
                    raise InputError(path, line, "expected one JSON object per line")
                yield _generic(obj, path, line)
            except InputError as exc:
                if skipped is None:
                    raise
                skipped.add(exc)


def _generic_csv(
    path: Path, participants: Participants, skipped: Skipped | None
) -> Iterator[Record]:
    for line, row in _csv_rows(path, skipped):
        try:
            yield _generic({k.lower(): v for k, v in row.items()}, path, line)
        except InputError as exc:
            if skipped is None:
                raise
            skipped.add(exc)


# --- times ------------------------------------------------------------------------------


def _time(value: Any, path: Path, line: int) -> datetime:
    """ISO 8601 (`Z`, an offset, or LinkedIn's trailing ` UTC`; no zone means UTC) or Unix
    seconds, as an aware UTC datetime."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        text = str(value).strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), UTC)
        if text.endswith(" UTC"):
            text = text[:-4]
        at = datetime.fromisoformat(text)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InputError(path, line, f"unreadable time {value!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
