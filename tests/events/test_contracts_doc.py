"""docs/contracts.md stays in step with the code: every config default and event field is there."""

from pathlib import Path

from engine.config import DEFAULTS, flatten
from engine.events import EVENT_FIELDS, OPTIONAL_FIELDS, RANK_FIELDS, RANK_HEALTH_FIELDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def test_every_config_default_is_documented():
    text = DOC.read_text(encoding="utf-8")
    missing = [key for key in flatten(DEFAULTS) if f"`{key}`" not in text]
    assert missing == [], f"add these keys to {DOC}: {missing}"


def test_every_event_and_field_is_documented():
    text = DOC.read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.splitlines()
            if line.startswith("| `")}
    for event, fields in EVENT_FIELDS.items():
        assert event in rows, f"event {event} missing from {DOC}"
        missing = [f for f in fields + OPTIONAL_FIELDS.get(event, ()) if f"`{f}`" not in rows[event]]
        assert missing == [], f"{event}: fields {missing} missing from its row in {DOC}"
    assert all(f"`{field}`" in text for field in RANK_FIELDS)
    assert [f for f in RANK_HEALTH_FIELDS if f"`{f}`" not in text] == []
