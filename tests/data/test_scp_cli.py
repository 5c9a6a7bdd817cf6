import json

import numpy as np
import pytest
import soundfile

from engine.data.cli import jsonl2scp_main, main, scp2jsonl_main


@pytest.fixture
def tables(tmp_path):
    for name in ("a", "b", "c"):
        soundfile.write(str(tmp_path / f"{name}.wav"), np.zeros(32000, dtype="float32"), 16000, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text("c c.wav\na a.wav\nb b.wav\nd missing.wav\nonly_audio a.wav\n")
    (tmp_path / "text.txt").write_text("a 你好世界\nc hello big world\nb 处理 data\nd 丢失\nonly_text 文本\n")
    return tmp_path


def test_scp2jsonl_funasr_syntax_keeps_order_and_reports_bad_keys(tables, monkeypatch, capsys):
    monkeypatch.chdir(tables)
    code = scp2jsonl_main(['++scp_file_list=["wav.scp", "text.txt"]', '++data_type_list=["source", "target"]',
                           "++jsonl_file_out=out.jsonl"])
    assert code == 0
    rows = [json.loads(line) for line in (tables / "out.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == ["c", "a", "b"]
    assert rows[0] == {"key": "c", "source": str(tables / "c.wav"), "source_len": 200,
                       "target": "hello big world", "target_len": 3}
    assert rows[1]["target_len"] == 4 and rows[2]["target_len"] == 2
    err = capsys.readouterr().err
    assert "wav.scp:4 key 'd': missing_audio" in err
    assert "key 'only_audio': key_in_one_list: missing from text.txt" in err
    assert "key 'only_text': key_in_one_list: missing from wav.scp" in err
    assert "dropped key_in_one_list: 2" in err and "dropped missing_audio: 1" in err


def test_scp2jsonl_strict_fails_naming_the_line(tables, monkeypatch, capsys):
    monkeypatch.chdir(tables)
    code = scp2jsonl_main(["--scp-file-list", "wav.scp", "text.txt", "--data-type-list", "source", "target",
                           "--jsonl-file-out", "out.jsonl", "--strict"])
    assert code == 2
    assert "error: wav.scp:5 key 'only_audio': key_in_one_list" in capsys.readouterr().err
    assert not (tables / "out.jsonl").exists()


def test_jsonl2scp_inverts_scp2jsonl(tables, monkeypatch):
    monkeypatch.chdir(tables)
    scp2jsonl_main(["--scp-file-list", "wav.scp", "text.txt", "--jsonl-file-out", "out.jsonl"])
    assert jsonl2scp_main(['++scp_file_list=["w2.scp", "t2.txt"]', '++data_type_list=["source", "target"]',
                           "++jsonl_file_in=out.jsonl"]) == 0
    assert (tables / "t2.txt").read_text() == "c hello big world\na 你好世界\nb 处理 data\n"
    assert (tables / "w2.scp").read_text().splitlines()[0] == f"c {tables / 'c.wav'}"


def test_unknown_funasr_option_is_named(tables, monkeypatch, capsys):
    monkeypatch.chdir(tables)
    with pytest.raises(SystemExit):
        scp2jsonl_main(["++scp_file_list=wav.scp", "++jsonl_file_out=x.jsonl", "++colour=red"])
    assert "++colour" in capsys.readouterr().err


def test_stats_prints_counts_histogram_and_problems(small_corpus, tmp_path, capsys):
    broken = tmp_path / "broken.jsonl"
    lines = (small_corpus / "test.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    entry["source"] = str(small_corpus / "test" / entry["source"][len("test/"):])
    broken.write_text(json.dumps(entry) + "\n{oops\n")
    assert main(["stats", str(small_corpus / "test.jsonl"), str(broken)]) == 0
    out = capsys.readouterr().out
    assert "utterances: 21" in out and "utterance duration (s)" in out
    assert f"{broken}:2: malformed_json" in out
    assert main(["stats", "--json", str(small_corpus / "test.jsonl")]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["utterances"] == 20 and 0 < stats["hours"] < 0.1 and stats["dropped"] == {}
    assert stats["num_dropped"] == 0 and stats["seconds"] == pytest.approx(stats["hours"] * 3600, abs=1)
    histogram = stats["duration_histogram"]
    assert len(histogram["edges"]) == len(histogram["counts"]) + 1 and sum(histogram["counts"]) == 20
