"""The export readers: each format detected by content and read faithfully; broken input
names its file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from proxy.backtest.inputs import InputError, Participants, Skipped, detect, read
from tests.support import REPO

FIXTURES = REPO / "tests" / "fixtures"
X_DMS = FIXTURES / "x-archive" / "direct-messages.js"
X_GROUP = FIXTURES / "x-archive" / "direct-messages-group.js"
LINKEDIN = FIXTURES / "linkedin-export" / "messages.csv"
JSONL = FIXTURES / "generic" / "history.jsonl"
CSV = FIXTURES / "generic" / "history.csv"
OWNER = "1460001111222333444"


def records(path: Path, participants: Participants | None = None, skipped: Skipped | None = None):
    return list(read(path, participants or Participants(), skipped))


def test_formats_are_detected_by_content_not_name(tmp_path: Path) -> None:
    for source, fmt in (
        (X_DMS, "x-archive"),
        (LINKEDIN, "linkedin"),
        (JSONL, "jsonl"),
        (CSV, "csv"),
    ):
        renamed = tmp_path / f"export-{fmt}.txt"
        renamed.write_bytes(source.read_bytes())
        assert detect(renamed) == fmt


def test_x_archive_one_to_one_conversations() -> None:
    participants = Participants()
    got = records(X_DMS, participants)
    assert len(got) == 9
    first = min(got, key=lambda r: r.at)
    assert first.sender == OWNER
    assert first.recipients == ("1460001111222333501",)
    assert first.at == datetime(2025, 3, 3, 9, 14, 5, 120000, tzinfo=UTC)
    assert "Acme Scheduler" in first.text
    received = [r for r in got if r.sender != OWNER]
    assert {r.recipients for r in received} == {(OWNER,)}
    assert participants.owner_candidates("x") == {OWNER}
    # Lines point into the file, for the report's "from" column.
    assert all(r.source.startswith("direct-messages.js:") for r in got)


def test_x_group_messages_go_to_every_other_participant() -> None:
    got = records(X_GROUP)
    by_sender = {r.sender: r for r in got}
    pitch = by_sender[OWNER]
    # Mara joined after the snapshot (participantsJoin): she is a participant too.
    assert set(pitch.recipients) == {
        "1460001111222333501",
        "1460001111222333502",
        "1460001111222333503",
        "1460001111222333505",
    }
    assert OWNER not in pitch.recipients
    assert OWNER in by_sender["1460001111222333503"].recipients


def test_a_truncated_x_archive_names_the_line(tmp_path: Path) -> None:
    text = X_DMS.read_text()
    cut = tmp_path / "direct-messages.js"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(InputError) as caught:
        records(cut)
    assert caught.value.path == str(cut)
    assert "truncated" in caught.value.problem
    assert caught.value.line is not None and caught.value.line > 1


def test_an_x_archive_with_broken_json_names_the_line(tmp_path: Path) -> None:
    lines = X_DMS.read_text().splitlines()
    lines[10] = lines[10].replace('" : "', '" "', 1)  # "text" : "…" loses its colon
    broken = tmp_path / "direct-messages.js"
    broken.write_text("\n".join(lines))
    with pytest.raises(InputError) as caught:
        records(broken)
    assert caught.value.line == 11
    assert "not valid JSON" in caught.value.problem


def test_linkedin_export_multiline_content_bom_and_drafts() -> None:
    participants = Participants()
    got = records(LINKEDIN, participants)
    assert len(got) == 8  # the draft row was never sent
    first = got[0]
    assert first.platform == "linkedin"
    assert first.sender == "ann-example-0a1b2c"
    assert first.recipients == ("ben-fictional-77x",)
    assert first.names == ("Ben Fictional",)
    assert first.sender_name == "Ann Example"
    assert first.at == datetime(2024, 3, 5, 14, 22, 31, tzinfo=UTC)
    assert first.text.startswith("Hi Ben,\n\nI noticed") and first.text.endswith("Best,\nAnn")
    carla = next(r for r in got if r.sender == "carla-madeup-31q")
    assert '"freight costs"' in carla.text
    assert participants.owner_candidates("linkedin") == {"ann-example-0a1b2c"}
    assert first.source == "messages.csv:2"
    assert got[1].source == "messages.csv:10"  # the first CONTENT spans lines 2-9


def test_linkedin_broken_quote_names_the_line(tmp_path: Path) -> None:
    text = LINKEDIN.read_text(encoding="utf-8-sig")
    broken = tmp_path / "messages.csv"
    broken.write_text(
        text
        + "x,,A,https://www.linkedin.com/in/a,B,https://www.linkedin.com/in/b,"
        + '2024-03-07 10:00:00 UTC,,"unterminated,INBOX,,No\n'
    )
    with pytest.raises(InputError) as caught:
        records(broken)
    assert caught.value.line == text.count("\n") + 1
    assert "broken CSV row" in caught.value.problem


def test_generic_jsonl_kinds() -> None:
    got = records(JSONL)
    follows = [r for r in got if r.kind == "follow"]
    assert (
        len(follows) == 5
        and follows[0].sender == "u101"
        and follows[0].recipients == ("acme_growth",)
    )
    received = next(r for r in got if r.outbound is False)
    assert received.sender == "u105" and received.recipients == ("acme_growth",)
    group = next(r for r in got if r.platform == "linkedin")
    assert group.recipients == ("li-anna", "li-bo")
    assert group.at == datetime.fromtimestamp(1746255600, UTC)


def test_generic_broken_lines_stop_or_are_counted(tmp_path: Path) -> None:
    bad = tmp_path / "h.jsonl"
    bad.write_text(
        '{"time": "2025-01-01T00:00:00Z", "account": "a", "recipient": "b", "text": "hi"}\n'
        '{"time": "yesterday", "account": "a", "recipient": "b", "text": "hi"}\n'
        "{not json\n"
        '{"time": "2025-01-01T00:01:00Z", "account": "a", "recipient": "c", "text": "hi"}\n'
        '{"time": "2025-01-01T00:02:00Z", "acc'
    )
    with pytest.raises(InputError) as caught:
        records(bad)
    assert (caught.value.line, caught.value.problem) == (2, "unreadable time 'yesterday'")
    skipped = Skipped()
    assert [r.recipients for r in records(bad, skipped=skipped)] == [("b",), ("c",)]
    assert skipped.count == 3
    assert skipped.examples[2].endswith(":5: truncated line")


def test_generic_csv_with_a_row_too_many_fields() -> None:
    broken = FIXTURES / "generic" / "broken-row.csv"
    with pytest.raises(InputError) as caught:
        records(broken)
    assert caught.value.line == 5
    skipped = Skipped()
    assert len(records(broken, skipped=skipped)) == 8
    assert skipped.count == 1


@pytest.mark.parametrize(
    "content",
    ["hello world\n", "name,email\nann,a@example.org\n", "window.YTD.tweets.part0 = [ ]\n", ""],
)
def test_unknown_formats_are_refused_at_line_1(tmp_path: Path, content: str) -> None:
    path = tmp_path / "export.js"
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        detect(path)
    assert caught.value.line == 1
