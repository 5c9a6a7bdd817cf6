"""``asr-train doctor``: the facts about this machine that a bug report needs.

Like ``python -m torch.utils.collect_env``, for this project: versions (Python, torch,
torchaudio, Textual, asr-tui), whether the compiled pair loads (the install check), CPU cores and
the threads the engine will use, each GPU (name, memory, compute capability, bf16), the
distributed back-ends (NCCL, gloo), the programs the demo and the console use (espeak-ng, tmux)
and the free disk under the runs root. Plain text, or ``--json`` (what the console's
Environment screen reads). Every probe catches its own failure and reports it as a value:
the doctor never fails, least of all on a machine without a GPU or with a broken torch.
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from engine.optim_sche.precision import auto_bf16, cpu_has_native_bf16
from engine.utils.cpus import cpu_flags, threads_per_process, usable_cpus
from engine.utils.install_check import check_install, installed_version

# Seconds a probed program (espeak-ng --version, tmux -V) may take before it counts as broken.
PROGRAM_TIMEOUT_S = 5.0


def _probe(fn):
    """Run one probe; its failure becomes {"error": "..."} instead of stopping the report."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a doctor reports every failure, whatever it is
        return {"error": f"{type(exc).__name__}: {exc}"}


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "asr-tui": installed_version("asr-tui"),
        "torch": installed_version("torch"),
        "torchaudio": installed_version("torchaudio"),
        "textual": installed_version("textual"),
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu(torch_module) -> dict:
    flags = cpu_flags()
    facts = {
        "model": cpu_model(),
        "machine_cores": os.cpu_count(),
        "usable_cores": usable_cpus(),
        # engine.utils.dist.set_thread_count: usable cores shared by the processes of a node
        "threads_per_process": {f"{n} per node": threads_per_process(n) for n in (1, 2, 4, 8)},
        "bf16_native": cpu_has_native_bf16(flags),
        # what train_conf.use_bf16: auto does on this CPU, and why
        "use_bf16_auto": auto_bf16("cpu", flags)[1].removeprefix("use_bf16: auto, "),
    }
    if torch_module is not None:
        facts["torch_threads_default"] = torch_module.get_num_threads()
        facts["capability"] = torch_module.backends.cpu.get_cpu_capability()
    return facts


def gpus(torch_module) -> dict:
    if torch_module is None:
        return {"available": False, "reason": "torch does not load", "devices": []}
    cuda = torch_module.cuda
    facts = {"available": bool(cuda.is_available()), "cuda_build": torch_module.version.cuda,
             "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "devices": []}
    if not facts["available"]:
        facts["reason"] = "no CUDA device visible" if torch_module.version.cuda else "torch built without CUDA"
        return facts
    for index in range(cuda.device_count()):
        props = cuda.get_device_properties(index)
        major, minor = props.major, props.minor
        facts["devices"].append({
            "index": index, "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "compute_capability": f"{major}.{minor}",
            "bf16": major >= 8,  # Ampere and newer compute bf16 natively
        })
    return facts


def distributed(torch_module) -> dict:
    if torch_module is None:
        return {"error": "torch does not load"}
    dist = torch_module.distributed
    facts = {"available": dist.is_available()}
    if facts["available"]:
        facts["gloo"] = dist.is_gloo_available()
        facts["nccl"] = dist.is_nccl_available()
        if facts["nccl"] and torch_module.cuda.is_available():
            facts["nccl_version"] = ".".join(map(str, torch_module.cuda.nccl.version()))
    return facts


def program(name: str, version_args: list[str]) -> dict:
    path = shutil.which(name)
    if path is None:
        return {"found": False}
    try:
        done = subprocess.run([path, *version_args], capture_output=True, text=True,
                              timeout=PROGRAM_TIMEOUT_S, stdin=subprocess.DEVNULL)
        first = (done.stdout or done.stderr).strip().splitlines()
        return {"found": True, "path": path, "version": first[0] if first else ""}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"found": True, "path": path, "error": str(exc)}


def tools() -> dict:
    espeak = program("espeak-ng", ["--version"])
    espeak["library"] = ctypes.util.find_library("espeak-ng")
    return {"espeak-ng": espeak, "tmux": program("tmux", ["-V"])}


def disk(runs_root: Path) -> dict:
    """Free space on the file system that holds ``runs_root`` (its nearest existing ancestor)."""
    root = Path(runs_root).absolute()
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"runs_root": str(root), "measured_at": str(probe), "free_gib": round(usage.free / 2**30, 1),
            "total_gib": round(usage.total / 2**30, 1)}


def collect(runs_root: Path = Path("exp")) -> dict:
    """Every fact, as JSON-able values; never raises."""
    check = check_install()
    try:  # torch may load where torchaudio does not: its GPU facts still help
        import torch as torch_module
    except Exception:  # noqa: BLE001 - reported by the install check
        torch_module = None
    report = {
        "versions": _probe(versions),
        "install_check": {"ok": check.ok, "summary": check.lines()[0] if check.ok else check.error,
                          "pins": check.pins},
        "cpu": _probe(lambda: cpu(torch_module)),
        "gpu": _probe(lambda: gpus(torch_module)),
        "distributed": _probe(lambda: distributed(torch_module)),
        "tools": _probe(tools),
        "disk": _probe(lambda: disk(runs_root)),
    }
    if not check.ok:
        report["install_check"]["fix"] = check.fix_hint()
    return report


def _value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return str(value)


def format_text(report: dict) -> str:
    """The report as plain text: a section per part, one ``key: value`` line per fact."""
    lines = []
    for section, facts in report.items():
        lines.append(f"{section}:")
        if isinstance(facts, dict) and "devices" in facts:
            devices = facts.get("devices") or []
            facts = {k: v for k, v in facts.items() if k != "devices"}
            facts["devices"] = len(devices)
            for key, value in facts.items():
                lines.append(f"  {key}: {_value(value)}")
            for device in devices:
                lines.append(f"  cuda:{device['index']}: {device['name']}, {device['memory_gib']} GiB, "
                             f"compute capability {device['compute_capability']}, "
                             f"bf16 {_value(device['bf16'])}")
            continue
        for key, value in (facts.items() if isinstance(facts, dict) else [("value", facts)]):
            lines.append(f"  {key}: {_value(value)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="asr-train doctor",
        description="Print the facts about this machine that a bug report needs (versions, CPU, GPUs, "
                    "NCCL/gloo, espeak-ng, tmux, free disk). Never fails.")
    parser.add_argument("--json", action="store_true", help="print JSON (what the console reads)")
    parser.add_argument("--runs-root", type=Path, default=Path("exp"),
                        help="where runs are written: its free disk is reported (default: exp)")
    args = parser.parse_args(argv)
    report = collect(args.runs_root)
    print(json.dumps(report, indent=1) if args.json else format_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
