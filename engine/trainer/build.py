"""Everything a run needs before its first step, in order: the run directory, tokenizer and CMVN,
data loaders, model, init_param or resume, OptimSchedulers, and the ``start``/``data`` events.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from engine.checkpoint import CheckpointManager
from engine.checkpoint.assets import ASSETS_KEY, check_assets, fingerprint
from engine.checkpoint.manager import relative_path
from engine.config import save_config
from engine.data import build_dataloader
from engine.data.frontend import WavFrontend
from engine.data.specaug import SpecAugment
from engine.funasr.config_map import BY_ENGINE_MODEL
from engine.models import build_model
from engine.optim_sche import TrainStep, build_optim_sches
from engine.optim_sche.run_length import resolve_max_update
from engine.trainer.assets import TOKENIZER_FILES, frontend_args, prepare_assets
from engine.trainer.init_param import describe, load_init_param
from engine.trainer.resume import Position, load_resume_state, position_of, restore_gradients
from engine.trainer.rng import restore_rng_state, seed_everything
from engine.trainer.train_log import TensorBoardScalars
from engine.trainer.trainer import Trainer

log = logging.getLogger("engine")


def build_loaders(config: dict, frontend: WavFrontend, tokenizer, dist_info):
    """(train loader, train sampler, train report, valid loader or None, valid report or None)."""
    seed = int(config["seed"])
    common = {"rank": dist_info.rank, "world_size": dist_info.world_size, "device_type": dist_info.device.type,
              "progress": dist_info.is_main}
    specaug = SpecAugment(**config["specaug_conf"]) if config["specaug_conf"] else None
    train_loader, train_sampler, train_report = build_dataloader(
        config["train_data_set_list"], config["dataset_conf"], frontend, tokenizer, train=True, seed=seed,
        specaug=specaug, **common)
    if not config["valid_data_set_list"]:
        log.warning("no valid_data_set_list: no validation; keep-n-best and averaging use the latest checkpoints%s",
                    "; train_conf.patience has nothing to count" if config["train_conf"].get("patience") else "")
        return train_loader, train_sampler, train_report, None, None
    valid_loader, _, valid_report = build_dataloader(
        config["valid_data_set_list"], config["dataset_conf"], frontend, tokenizer, train=False, seed=seed,
        **common)
    return train_loader, train_sampler, train_report, valid_loader, valid_report


def data_event(report, split: str, lists: list[str]) -> dict:
    fields = report.to_event()
    fields.pop("name", None)
    return {**fields, "split": split, "lists": list(lists)}


def build_trainer(config: dict, dist_info, *, events, stop) -> tuple[Trainer, dict]:
    """The Trainer, ready to ``fit()``, and the fields of the ``start`` event written for it."""
    run_dir = Path(config["output_dir"])
    train_conf = config["train_conf"]
    if train_conf.get("deterministic"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    tokenizer, cmvn_file = prepare_assets(config, run_dir, dist_info)
    tokenizer_path = next(run_dir / name for name in TOKENIZER_FILES if (run_dir / name).is_file())
    assets = fingerprint(tokenizer_path, cmvn_file)
    frontend = WavFrontend(**frontend_args(config["frontend_conf"]), cmvn_file=cmvn_file)
    train_loader, train_sampler, train_report, valid_loader, valid_report = build_loaders(
        config, frontend, tokenizer, dist_info)
    data_events = {}
    for split, report, lists in (("train", train_report, config["train_data_set_list"]),
                                 ("valid", valid_report, config["valid_data_set_list"])):
        if report is not None:
            data_events[split] = data_event(report, split, lists)
            events.write("data", **data_events[split])
            if dist_info.is_main and report.num_dropped:
                log.warning("%s data: %s", split, report.format(list_problems=True))
            if dist_info.is_main and report.oov.get("texts"):
                log.warning("%s data: %d of %d texts%s (%.1f%%) have tokens outside %s (%d of %d tokens become "
                            "<unk>)%s", split, report.oov["texts"], report.oov["of_texts"],
                            " (a seeded sample)" if report.oov.get("sampled") else "",
                            100.0 * report.oov["texts"] / max(report.oov["of_texts"], 1), tokenizer_path.name,
                            report.oov["tokens"], report.oov["of_tokens"],
                            ": the lists differ from the ones the tokenizer was built from"
                            if report.oov["texts"] > 0.05 * report.oov["of_texts"] else "")

    # Seeded here, after the one-off preparation (CMVN draws from the global generator), so that a
    # run whose tokenizer and CMVN already exist starts from the very same initial weights.
    seed_everything(int(config["seed"]))
    model = build_model(config["model"], frontend.output_dim, tokenizer.vocab_size,
                        config["model_conf"], config["encoder_conf"], config["decoder_conf"],
                        sos_eos_id=tokenizer.sos_eos_id, predictor_conf=config["predictor_conf"]).to(dist_info.device)
    num_params = sum(p.numel() for p in model.parameters())

    checkpoint_path, state = load_resume_state(run_dir, train_conf)
    init_report, init_step = None, None
    if state is not None:
        if not train_conf.get("allow_changed_assets"):
            check_assets(state.get(ASSETS_KEY), assets, checkpoint_path,
                         {"tokens": tokenizer_path, "cmvn": cmvn_file}, "set ++train_conf.allow_changed_assets=true")
        position = position_of(state, checkpoint_path)
        model.load_state_dict(state["model"])
        log.info("resuming from %s (epoch %d, step %d)", checkpoint_path, position.epoch, position.step)
    else:
        position = Position()
        if train_conf.get("init_param"):
            rename = BY_ENGINE_MODEL[config["model"]].rename if config["model"] in BY_ENGINE_MODEL else ()
            init_report, init_step = load_init_param(model, train_conf["init_param"], rename=rename)
            log.info(describe(init_report))
            check_size_mismatch(init_report, train_conf["init_param"], tokenizer, frontend)

    if dist_info.is_main:  # after the resume checks: a refused resume leaves the run's config as it was
        save_config(config, run_dir / "config.yaml")
    # max_update: auto -> the run's length, from the sampler built above (epoch 1, equal on every rank);
    # a resumed run keeps its checkpoint's value.
    optim_sches_conf, max_update, notes = resolve_max_update(
        config["optim_sches"], train_conf, train_sampler.num_batches(1), (state or {}).get("max_update"))
    for note in notes:
        log.warning(note)
    if max_update:
        log.info("max_update: %s (max_epoch %d x %d batches per epoch // accum_grad)",
                 ", ".join(f"{name} {value}" for name, value in max_update.items()), int(train_conf["max_epoch"]),
                 train_sampler.num_batches(1))
    optim_sches = build_optim_sches(optim_sches_conf, model, train_conf)
    train_step = TrainStep(model, optim_sches, train_conf, dist_info.device)
    precision = {"dtype": train_step.precision, "reason": train_step.precision_reason}
    log.info("precision: %s (%s)", precision["dtype"], precision["reason"])
    if state is not None:
        train_step.load_state_dict(state["train_step"])
        train_sampler.load_state_dict(state["sampler"])
        restore_gradients_and_rng(state, model, dist_info)
    else:
        train_step.set_init_step(init_step)

    if init_report is not None:
        events.write("init_param", **init_report)
    steps_per_epoch = math.ceil(len(train_sampler) / int(train_conf["accum_grad"]))
    start = {"world_size": dist_info.world_size, "num_params": num_params, "steps_per_epoch": steps_per_epoch,
             "batches_per_epoch": len(train_sampler), "max_epoch": int(train_conf["max_epoch"]),
             "resumed_from": relative_path(checkpoint_path, run_dir) if checkpoint_path else None,
             "epoch": position.next_epoch, "step": position.step, "device": str(dist_info.device),
             "config": config, "max_update": max_update,
             "precision": precision}
    if init_report is not None:
        start["init_param"] = init_report
    if config.get("model_dir"):
        start["model_dir"] = config["model_dir"]

    checkpoints = CheckpointManager(run_dir, keep_nbest_models=int(train_conf["keep_nbest_models"]),
                                    avg_nbest_model=int(train_conf["avg_nbest_model"]),
                                    metric=train_conf["avg_keep_nbest_models_type"]) if dist_info.is_main else None
    trainer = Trainer(config=config, run_dir=run_dir, dist_info=dist_info, model=model, train_step=train_step,
                      train_loader=train_loader, train_sampler=train_sampler, valid_loader=valid_loader,
                      checkpoints=checkpoints, events=events, stop=stop,
                      tensorboard=TensorBoardScalars(run_dir, enabled=dist_info.is_main), position=position,
                      assets=assets)
    trainer.train_data_event = data_events["train"]
    trainer.max_update = max_update
    return trainer, start


# Engine names of the layers whose shapes follow the vocabulary, and of the input projection.
VOCAB_LAYERS = ("decoder.embed.", "decoder.output_layer.", "ctc.ctc_lo.")
INPUT_LAYER = "encoder.embed."


def check_size_mismatch(report: dict, init_param, tokenizer, frontend) -> None:
    """A vocabulary or feature-size change the key filter did not ask for is an error naming both
    sizes and the filter that would re-initialise the layer (other shape changes are reported)."""
    mismatched = {item["key"]: item for item in report["mismatched"]}
    first = str(init_param[0] if isinstance(init_param, list) else init_param).split(":")[0]
    vocab = [item for key, item in mismatched.items() if key.startswith(VOCAB_LAYERS)]
    if vocab:
        item = next((i for i in vocab if i["key"] == "ctc.ctc_lo.weight"), vocab[0])
        raise ValueError(
            f"vocabulary mismatch: {first} has {item['checkpoint'][0]} output tokens ({item['key']}), the run's "
            f"tokenizer has {tokenizer.vocab_size}; to re-initialise the output layers, set train_conf.init_param: "
            f"'{first}:::decoder.embed,decoder.output_layer,ctc.ctc_lo'")
    inputs = [item for key, item in mismatched.items() if key.startswith(INPUT_LAYER)]
    if inputs:
        item = inputs[0]
        raise ValueError(
            f"feature size mismatch: {first}'s input layer {item['key']} is {item['checkpoint']}, the model built "
            f"for this frontend's {frontend.output_dim} features has {item['model']}; to re-initialise the input "
            f"layer, set train_conf.init_param: '{first}:::encoder.embed'")


def restore_gradients_and_rng(state: dict, model, dist_info) -> None:
    """Each rank's own RNG state; pending gradients of a one-process run (see resume.py)."""
    rng_states = state.get("rng") or []
    if len(rng_states) == dist_info.world_size:
        restore_rng_state(rng_states[dist_info.rank])
    else:
        log.warning("checkpoint has RNG states of %d ranks, this run has %d: random streams restart from "
                    "the seed (the run continues, not bit-exactly)", len(rng_states), dist_info.world_size)
        seed_everything(int(state.get("step", 0)) * 1000 + dist_info.rank)
    grads = state.get("pending_grads")
    if grads and dist_info.world_size == 1:
        restore_gradients(model, grads)
    elif grads:
        log.warning("checkpoint holds gradients of %d tensors accumulated towards an update; "
                    "they are dropped in a %d-rank run", len(grads), dist_info.world_size)
