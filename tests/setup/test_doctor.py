"""``asr-train doctor``: every section present, true to this machine, and no failure without a GPU
or with a broken torchaudio."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

from engine.doctor import format_text, gpus, main

SECTIONS = ["versions", "install_check", "cpu", "gpu", "distributed", "tools", "disk"]


def test_json_report_is_true_to_this_machine(capsys, tmp_path):
    assert main(["--json", "--runs-root", str(tmp_path / "not" / "made" / "yet")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == SECTIONS
    assert report["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["install_check"]["ok"] is True
    assert report["cpu"]["usable_cores"] == len(os.sched_getaffinity(0))
    assert report["cpu"]["threads_per_process"]["1 per node"] == len(os.sched_getaffinity(0))
    assert report["distributed"]["gloo"] is True
    assert isinstance(report["gpu"]["available"], bool)
    assert report["disk"]["measured_at"] == str(tmp_path) and report["disk"]["free_gib"] > 0
    assert not (tmp_path / "not").exists()  # the doctor writes nothing
    for tool in ("espeak-ng", "tmux"):
        assert isinstance(report["tools"][tool]["found"], bool)


def test_text_report_names_every_section(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for section in SECTIONS:
        assert f"\n{section}:\n" in f"\n{out}"


def fake_torch(devices):
    props = [SimpleNamespace(name=name, total_memory=int(gib * 2**30), major=major, minor=minor)
             for name, gib, major, minor in devices]
    cuda = SimpleNamespace(is_available=lambda: bool(props), device_count=lambda: len(props),
                           get_device_properties=lambda i: props[i])
    return SimpleNamespace(cuda=cuda, version=SimpleNamespace(cuda="13.0"))


def test_gpus_are_listed_with_memory_capability_and_bf16():
    facts = gpus(fake_torch([("NVIDIA H200", 139.8, 9, 0), ("Tesla V100", 32, 7, 0)]))
    assert facts["available"] is True
    assert [(d["name"], d["memory_gib"], d["compute_capability"], d["bf16"]) for d in facts["devices"]] == [
        ("NVIDIA H200", 139.8, "9.0", True), ("Tesla V100", 32.0, "7.0", False)]
    text = format_text({"gpu": facts})
    assert "cuda:0: NVIDIA H200, 139.8 GiB, compute capability 9.0, bf16 yes" in text
    assert "cuda:1: Tesla V100, 32.0 GiB, compute capability 7.0, bf16 no" in text
    assert gpus(fake_torch([]))["reason"] == "no CUDA device visible"


def test_doctor_does_not_fail_when_torchaudio_cannot_load(broken_torchaudio):
    done = subprocess.run([sys.executable, "-m", "engine.train", "doctor", "--json"], env=broken_torchaudio,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["install_check"]["ok"] is False
    assert "undefined symbol" in report["install_check"]["summary"]
    assert "pip install --force-reinstall" in report["install_check"]["fix"]
