"""A rank's resources in its train-event row: present where they exist, absent where they do not."""

import math

import pytest
import torch

from engine.events import RANK_HEALTH_FIELDS, validate_event
from engine.trainer.resources import ResourceProbe, cpu_seconds, figures_from_values, rss_mb
from engine.trainer.train_log import IntervalMeter, rank_rows, train_event_fields


class FakeCuda:
    """torch.cuda's query functions as a GPU with NVML answers them (no GPU here)."""

    def __init__(self, nvml: bool = True) -> None:
        self.nvml = nvml

    def mem_get_info(self, device):
        return 30 * 2**30, 80 * 2**30

    def utilization(self, device):
        if not self.nvml:
            raise ModuleNotFoundError("pynvml does not seem to be installed")
        return 87

    def temperature(self, device):
        if not self.nvml:
            raise ModuleNotFoundError("pynvml does not seem to be installed")
        return 71


def test_proc_figures_of_this_process():
    assert rss_mb() > 10  # this interpreter with torch holds far more than 10 MiB
    before = cpu_seconds()
    sum(i * i for i in range(300_000))
    assert cpu_seconds() > before


def test_cpu_percent_between_samples_and_absent_files(tmp_path):
    ticks = iter([0.0, 2.0, 4.0])
    cpu = iter([10.0, 11.0, 13.0])
    probe = ResourceProbe(clock=lambda: next(ticks), read_cpu=lambda: next(cpu), read_rss=lambda: 512.0)
    assert probe.sample() == {"rss_mb": 512.0, "cpu_percent": 50.0}
    assert probe.sample()["cpu_percent"] == 100.0
    missing = str(tmp_path / "nope")
    bare = ResourceProbe(read_rss=lambda: rss_mb(missing), read_cpu=lambda: cpu_seconds(missing))
    assert bare.sample() == {}
    assert all(math.isnan(v) for v in bare.row_values())


def test_gpu_figures_and_their_absence_without_nvml():
    probe = ResourceProbe(cuda=FakeCuda(), device=0, read_rss=lambda: 100.0)
    figures = probe.sample()
    assert figures["gpu_memory_used_mb"] == 50 * 1024 and figures["gpu_memory_total_mb"] == 80 * 1024
    assert figures["gpu_util"] == 87.0 and figures["gpu_temperature_c"] == 71.0
    without_nvml = ResourceProbe(cuda=FakeCuda(nvml=False), device=0).sample()
    assert "gpu_util" not in without_nvml and "gpu_temperature_c" not in without_nvml
    assert without_nvml["gpu_memory_used_mb"] == 50 * 1024
    assert figures_from_values([1.0, math.nan, 3.0]) == {"rss_mb": 1.0, "gpu_util": 3.0}


def test_train_event_rows_carry_what_each_rank_has():
    batch = {"keys": ["a", "b"], "num_frames_real": 30, "num_frames_padded": 40}
    rows = []
    for probe in (ResourceProbe(cuda=FakeCuda(), device=0, read_rss=lambda: 900.0),
                  ResourceProbe(cuda=FakeCuda(nvml=False), device=1, read_rss=lambda: 800.0)):
        meter = IntervalMeter()
        meter.add({"loss": 1.0, "acc": 0.5}, 2.0, batch, {"total": 0.3})
        row, names = meter.row(torch.device("cpu"), probe)
        rows.append(row)
    fields = train_event_fields(rank_rows(rows, names), epoch=1, step=10, batch=1, batches_per_epoch=5,
                                lrs={"main": 1e-3}, grad_norms={"main": 2.0}, elapsed_s=1.0, frame_shift_ms=10,
                                skipped={"main": 2})
    assert validate_event({"event": "train", "time": 0.0, **fields}) == []
    first, second = fields["ranks"]
    assert first["rss_mb"] == 900.0 and first["gpu_util"] == 87.0 and first["gpu_temperature_c"] == 71.0
    assert second["rss_mb"] == 800.0 and "gpu_util" not in second and "gpu_temperature_c" not in second
    assert fields["skipped"] == {"main": 2}


@pytest.mark.parametrize("field", RANK_HEALTH_FIELDS)
def test_contract_rejects_a_non_number(field):
    row = {"rank": 0, "loss": 1.5, "batch_size": 8, "data_load_s": 0.01, "forward_s": 0.1,
           "backward_s": 0.2, "optim_s": 0.01, "total_s": 0.32, "memory_mb": 512.0, field: "high"}
    event = {"event": "train", "time": 1.0, "epoch": 1, "step": 5, "lr": {"main": 1e-3}, "loss": 2.0,
             "acc": 0.5, "grad_norm": {"main": 1.0}, "throughput": 1.0, "padding_ratio": 0.0, "ranks": [row]}
    assert validate_event(event) == [f"train: ranks[0].{field} is str, expected int/float"]
