import pytest
import yaml

from engine.config import (
    DEFAULTS,
    ConfigError,
    apply_overrides,
    check_config,
    flatten,
    load_config,
    save_config,
)


def write(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_defaults_fill_and_overrides_parse_yaml_values(tmp_path):
    path = write(tmp_path, {"train_data_set_list": "data/train.jsonl", "train_conf": {"max_epoch": 3}})
    config = load_config(path, ["++train_conf.accum_grad=4", "dataset_conf.batch_type=length", "++seed=7"])
    assert config["train_data_set_list"] == ["data/train.jsonl"]
    assert config["train_conf"]["max_epoch"] == 3
    assert config["train_conf"]["accum_grad"] == 4
    assert config["train_conf"]["log_interval"] == DEFAULTS["train_conf"]["log_interval"]
    assert config["dataset_conf"]["batch_type"] == "length"
    assert config["seed"] == 7


def test_funasr_single_form_becomes_one_optim_sche(tmp_path):
    path = write(tmp_path, {
        "train_data_set_list": ["t.jsonl"],
        "optim": "adam", "optim_conf": {"lr": 0.002},
        "scheduler": "warmuplr", "scheduler_conf": {"warmup_steps": 30000},
    })
    config = load_config(path, ["++optim_conf.lr=0.0002"])
    assert list(config["optim_sches"]) == ["main"]
    entry = config["optim_sches"]["main"]
    assert entry["type"] == "warmuplr"
    assert entry["conf"]["optim_type"] == "Adam"
    assert entry["conf"]["optim_conf"]["lr"] == pytest.approx(0.0002)
    assert entry["conf"]["warmup_steps"] == 30000
    assert "optim_conf" not in config


def test_funasr_lr_override_applies_to_a_single_optim_sches_preset(tmp_path):
    path = write(tmp_path, {"train_data_set_list": ["t.jsonl"], "optim_sches": {
        "enc": {"type": "noam", "conf": {"optim_type": "AdamW", "optim_conf": {"lr": 0.001, "weight_decay": 0.01}}}}})
    config = load_config(path, ["++optim_conf.lr=0.0002"])
    assert config["optim_sches"]["enc"]["conf"]["optim_conf"] == {"lr": 0.0002, "weight_decay": 0.01}


def test_funasr_form_with_several_optim_sches_is_an_error(tmp_path):
    path = write(tmp_path, {"train_data_set_list": ["t.jsonl"], "optim_sches": {
        "a": {"type": "noam", "conf": {}}, "b": {"type": "noam", "conf": {}}}})
    with pytest.raises(ConfigError, match="optim_conf.*ambiguous"):
        load_config(path, ["++optim_conf.lr=0.1"])


@pytest.mark.parametrize("data, key", [
    ({"train_conf": {"max_epochs": 3}}, "train_conf.max_epochs: unknown key"),
    ({"batch_size": 3}, "batch_size: unknown key"),
    ({"train_conf": {"accum_grad": "four"}}, "train_conf.accum_grad: must be an integer"),
    ({"train_conf": {"accum_grad": 0}}, "train_conf.accum_grad: must be at least 1"),
    ({"dataset_conf": {"batch_type": "tokens"}}, "dataset_conf.batch_type: must be one of example, length, token"),
    ({"train_conf": {"use_fp16": True, "use_bf16": True}}, "use_fp16 and use_bf16 are exclusive"),
    ({"distributed": {"nnodes": 2, "node_rank": 2}}, "distributed.node_rank: must be below nnodes"),
    ({"optim_sches": {"main": {"type": "noam", "conf": {"step_per_update": 0}}}}, "optim_sches.main.conf.step_per_update"),
])
def test_bad_values_name_file_and_key(tmp_path, data, key):
    path = write(tmp_path, {"train_data_set_list": ["t.jsonl"], **data})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert key in str(info.value)


def test_bad_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 1\ntrain_conf: {max_epoch: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+"):
        load_config(path)


def test_missing_file_and_bad_override_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected \\+\\+key.path=value"):
        apply_overrides({}, ["++seed"])


def test_check_config_lists_every_issue_by_key():
    config = dict(DEFAULTS, train_data_set_list=[], seed="x")
    keys = {issue.key for issue in check_config(config)}
    assert {"seed", "train_data_set_list"} <= keys


def test_save_and_load_round_trip(tmp_path):
    config = load_config(write(tmp_path, {"train_data_set_list": ["训练.jsonl"]}))
    save_config(config, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == config
    assert not [p for p in (tmp_path / "run").iterdir() if p.name != "config.yaml"]


def test_flatten_gives_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": {}}) == {"a.b": 1, "a.c.d": 2, "e": {}}


def test_config_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, engine.config, engine.utils.fileio; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_overrides_read_exponent_numbers_as_numbers():
    assert apply_overrides({}, ["++optim_conf.lr=1e-3", "++a=2E+2", "++b=e5"]) == {
        "optim_conf": {"lr": 0.001}, "a": 200.0, "b": "e5"}


def test_cross_field_rules_are_refused_by_the_engine_as_by_the_form():
    """asr-train validates with check_config, which applies engine.config_rules: the setup form
    and the engine refuse the same combinations, each named by the key that fixes it."""
    from engine.config import ConfigError, validate_config

    user = {"train_data_set_list": ["t.jsonl"], "distributed": {"devices": "0", "nproc_per_node": 2},
            "optim_sches": {"main": {"type": "warmuplr", "conf": {"optim_conf": {"lr": 0.001}}},
                            "ctc": {"type": "constant", "conf": {"optim_conf": {"lr": 0.001},
                                                                "updated_modules": ["ctc"]}}}}
    with pytest.raises(ConfigError) as raised:
        validate_config(user, "exp.yaml")
    message = str(raised.value)
    assert message.startswith("exp.yaml: ")
    assert "distributed.devices: lists 1 GPU(s) for nproc_per_node 2" in message
    assert "optim_sches.main.conf.updated_modules: with several OptimSchedulers, name the modules" in message
    # averaging more than are kept is valid: the engine keeps max(keep_nbest_models, avg_nbest_model)
    validate_config({"train_data_set_list": ["t.jsonl"],
                     "train_conf": {"keep_nbest_models": 1, "avg_nbest_model": 3}}, "exp.yaml")
