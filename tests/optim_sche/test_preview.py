"""``asr-train lr-preview``: curves and a summary from a config file, errors naming the key."""

import os

from engine.optim_sche.preview import main

TWO = """
train_conf: {accum_grad: 2, ft_factor: 0.5}
optim_sches:
  enc:
    type: tri_stage
    conf: {optim_type: AdamW, optim_conf: {lr: 0.001}, updated_modules: encoder,
           phase_ratio: [0.1, 0.4, 0.5], max_update: 200}
  dec:
    type: warmuplr
    conf: {optim_type: AdamW, optim_conf: {lr: 0.002}, updated_modules: decoder, warmup_steps: 20, step_per_update: 2}
"""


def test_preview_draws_every_optim_sche_with_a_summary(tmp_path, capsys, monkeypatch):
    config = tmp_path / "exp.yaml"
    config.write_text(TWO)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["--config", str(config), "--steps", "400", "--width", "70", "--height", "14"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert "learning rate per micro-batch step" in out and "⠉" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("enc ", "dec "))}
    assert rows["enc"][1:3] == ["tri_stage", "200"]
    assert rows["enc"][4] == "5.000e-04"  # peak lr × ft_factor
    assert rows["dec"][1:3] == ["warmuplr", "100"]
    assert rows["dec"][4:6] == ["1.000e-03", "40"]  # peak at real step 20 = micro-batch 20 × accum_grad 2
    assert os.listdir(work) == []


def test_preview_reads_funasr_form_and_overrides_and_picks_steps(tmp_path, capsys):
    config = tmp_path / "funasr.yaml"
    config.write_text("optim: adam\noptim_conf: {lr: 0.0005}\nscheduler: warmuplr\nscheduler_conf: {warmup_steps: 100}\n")
    assert main(["--config", str(config), "++optim_conf.lr=0.0002", "--width", "60"]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("main "))
    assert row[2] == "500" and row[4] == "2.000e-04" and row[5] == "100"


def test_preview_bad_config_names_file_and_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(TWO.replace("warmup_steps: 20", "warmup_step: 20"))
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "optim_sches.dec.conf.warmup_step: unknown key" in err
