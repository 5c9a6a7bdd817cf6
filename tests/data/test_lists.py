import json

import numpy as np
import pytest
import soundfile

from engine.data.lists import DataError, read_jsonl, source_len_of, target_len_of


def write_wav(path, seconds=1.0, rate=16000, channels=1, subtype="PCM_16"):
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, (int(seconds * rate), channels)).astype("float32")
    soundfile.write(str(path), samples, rate, subtype=subtype)
    return path


@pytest.fixture
def bad_list(tmp_path):
    write_wav(tmp_path / "a.wav")
    write_wav(tmp_path / "b.flac", rate=8000, channels=2)
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    lines = [
        json.dumps({"key": "a", "source": "a.wav", "target": "你好"}, ensure_ascii=False).encode(),
        json.dumps({"key": "b", "source": "b.flac", "target": "hello world"}).encode(),
        b'{"key": "c", "source": "a.wav", "target": "x"',  # malformed
        json.dumps({"key": "a", "source": "a.wav", "target": "again"}).encode(),  # duplicate
        json.dumps({"key": "e", "source": "a.wav", "target": "  "}).encode(),  # empty text
        json.dumps({"key": "f", "source": "missing.wav", "target": "text"}).encode(),
        json.dumps({"key": "g", "source": "broken.wav", "target": "text"}).encode(),
        '{"key": "h", "source": "a.wav", "target": "caf\u00e9"}'.encode("latin-1"),  # not UTF-8
        json.dumps({"key": "i", "target": "no source"}).encode(),
        json.dumps({"key": "j", "source": "a.wav", "source_len": "long", "target": "text"}).encode(),
        json.dumps({"key": "k", "source": "a.wav", "target": 42}).encode(),
    ]
    path = tmp_path / "list.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_entries_are_skipped_and_reported_by_line_and_key(bad_list):
    entries, report = read_jsonl(bad_list)
    assert [e["key"] for e in entries] == ["a", "b"]
    assert dict(report.dropped) == {"malformed_json": 1, "duplicate_key": 1, "empty_text": 1, "missing_audio": 1,
                                    "unreadable_audio": 1, "not_utf8": 1, "missing_field": 1,
                                    "bad_field": 2}
    where = {(p.reason, p.line, p.key) for p in report.problems}
    assert ("malformed_json", 3, None) in where
    assert ("duplicate_key", 4, "a") in where
    assert ("missing_audio", 6, "f") in where
    assert ("unreadable_audio", 7, "g") in where
    assert ("not_utf8", 8, None) in where
    assert ("bad_field", 10, "j") in where and ("bad_field", 11, "k") in where
    text = report.format()
    assert f"{bad_list}:6 key 'f': missing_audio" in text
    assert "2 utterances" in text
    assert report.notes == {"resampled 8000 Hz -> 16000 Hz": 1, "downmixed to mono": 1}


def test_strict_mode_fails_on_first_bad_entry_naming_file_and_line(bad_list):
    with pytest.raises(DataError, match=r"list\.jsonl:3: malformed_json"):
        read_jsonl(bad_list, strict=True)


def test_source_len_filled_from_audio_and_paths_resolved_beside_the_list(bad_list):
    entries, report = read_jsonl(bad_list)
    assert entries[0]["source_len"] == 100  # 1 s = 100 frames of 10 ms
    assert entries[1]["source_len"] == 100  # at 8 kHz too
    assert entries[0]["source"] == str(bad_list.parent / "a.wav")
    assert report.utterances == 2 and report.hours == pytest.approx(2 / 3600)
    event = report.to_event()
    assert event["utterances"] == 2 and event["dropped"]["missing_audio"] == 1


def test_funasr_length_rules():
    assert source_len_of(16000 * 3, 16000) == 300
    assert target_len_of("he tried to think") == 4
    assert target_len_of("欢迎大家") == 4
