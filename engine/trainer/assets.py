"""The run's tokenizer (tokens.txt / bpe.model) and global CMVN (am.mvn), made once by rank 0.

Rank 0 builds what the run directory lacks from the training lists (a resumed run, or a
directory the user seeded with their own tokens.txt, keeps what is there; a fine-tuning run takes
them from its init_param model's directory); the other ranks wait
on a long-timeout barrier and receive the files' bytes by broadcast, so nodes that do not share
the run directory's storage get the very same tokenizer and statistics.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from engine.data.frontend import WavFrontend, compute_cmvn, write_am_mvn
from engine.data.list_index import DataError, index_lists, probe_audio
from engine.data.tokenizer import build_tokenizer, load_tokenizer
from engine.utils.dist import DistInfo, barrier_group, broadcast_object
from engine.utils.fileio import atomic_write_bytes

TOKENIZER_FILES = ("bpe.model", "tokens.txt")
CMVN_FILE = "am.mvn"
# Global means and variances of 80 bins settle within a few hundred utterances; larger lists are
# sampled (seeded), so that preparing a 10000-hour run takes seconds, not hours.
CMVN_MAX_UTTERANCES = 1000

log = logging.getLogger("engine")


def frontend_args(frontend_conf: dict) -> dict:
    keys = ("fs", "n_mels", "frame_length", "frame_shift", "dither", "lfr_m", "lfr_n", "window")
    return {key: frontend_conf[key] for key in keys if key in frontend_conf}


def _existing_tokenizer(run_dir: Path) -> Path | None:
    for name in TOKENIZER_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def _index_training_lists(config: dict):
    """The training lists' index (no audio header is read: an unreadable file is counted when loaded)."""
    fs = config["frontend_conf"].get("fs", 16000)
    index, report = index_lists(config["train_data_set_list"], fs=fs, progress=True)
    if report.num_dropped:
        log.warning("%s: %d entries unusable for the tokenizer/CMVN (%s)", ", ".join(config["train_data_set_list"]),
                    report.num_dropped, ", ".join(f"{k}: {v}" for k, v in report.dropped.items()))
    if not len(index):
        raise DataError(f"train_data_set_list: no usable utterances in {', '.join(config['train_data_set_list'])}")
    return index


def _copy_from_init_model(config: dict, run_dir: Path) -> None:
    """Fine-tuning: the tokenizer and CMVN of the model in ``init_param`` carry over with its weights.

    A tokenizer rebuilt from the new data would number the tokens differently and make the
    output layers meaningless; so when the init checkpoint's directory holds them, they are used.
    """
    if config.get("model_dir"):
        _copy_from_model_dir(config, run_dir)
        return
    init_param = config["train_conf"].get("init_param")
    if not init_param:
        return
    first = init_param[0] if isinstance(init_param, list) else str(init_param).split(",")[0].strip()
    source_dir = Path(first.split(":")[0]).parent
    if _existing_tokenizer(run_dir) is None and _existing_tokenizer(source_dir) is not None:
        source = _existing_tokenizer(source_dir)
        atomic_write_bytes(run_dir / source.name, source.read_bytes())
        log.info("tokenizer %s taken from the init_param model", source)
    if config.get("cmvn") == "global" and not (run_dir / CMVN_FILE).is_file() and (source_dir / CMVN_FILE).is_file():
        atomic_write_bytes(run_dir / CMVN_FILE, (source_dir / CMVN_FILE).read_bytes())
        log.info("CMVN %s taken from the init_param model", source_dir / CMVN_FILE)


def _copy_from_model_dir(config: dict, run_dir: Path) -> None:
    """``model: DIR``: the FunASR model directory's token list (tokens.json -> tokens.txt, the same
    list in the same order) and am.mvn, unless the experiment builds its own tokenizer."""
    from engine.funasr.model_dir import read_model_dir

    model_dir = read_model_dir(config["model_dir"])
    if config["tokenizer_conf"] == model_dir.engine["tokenizer_conf"] and _existing_tokenizer(run_dir) is None:
        if model_dir.bpe_model is not None:
            atomic_write_bytes(run_dir / "bpe.model", model_dir.bpe_model.read_bytes())
        else:
            atomic_write_bytes(run_dir / "tokens.txt",
                               "".join(f"{token}\n" for token in model_dir.token_list).encode("utf-8"))
        log.info("tokenizer taken from the model directory %s (%d tokens)", model_dir.path, model_dir.vocab_size)
    if model_dir.cmvn_file is not None and not (run_dir / CMVN_FILE).is_file():
        atomic_write_bytes(run_dir / CMVN_FILE, model_dir.cmvn_file.read_bytes())
        log.info("CMVN %s taken from the model directory", model_dir.cmvn_file)


def _make_assets(config: dict, run_dir: Path) -> None:
    """Rank 0: write the tokenizer and am.mvn into run_dir unless they are already there."""
    _copy_from_init_model(config, run_dir)
    need_tokenizer = _existing_tokenizer(run_dir) is None
    need_cmvn = config.get("cmvn") == "global" and not (run_dir / CMVN_FILE).is_file()
    if not (need_tokenizer or need_cmvn):
        return
    index = _index_training_lists(config)
    if need_tokenizer:
        log.info("building the %s tokenizer from %d training texts", config["tokenizer_conf"].get("type", "char"),
                 len(index))
        build_tokenizer(config["tokenizer_conf"], list(index.texts()), run_dir)
    if need_cmvn:
        positions = range(len(index))
        if len(index) > CMVN_MAX_UTTERANCES:
            positions = random.Random(config["seed"]).sample(positions, CMVN_MAX_UTTERANCES)
            log.info("CMVN from a seeded sample of %d of %d utterances", len(positions), len(index))
        # Only the sample's headers are read (the lists' are not); an unreadable one is left out.
        sample = [entry for entry in (index.entry(i) for i in positions) if probe_audio(entry["source"])[0] is not None]
        if len(sample) < len(positions):
            log.warning("CMVN: %d sampled utterances have missing or unreadable audio and were left out",
                        len(positions) - len(sample))
        num_workers = int(config["dataset_conf"].get("num_workers", 0))
        means, stds = compute_cmvn(sample, WavFrontend(**frontend_args(config["frontend_conf"])),
                                   num_workers=num_workers, progress=True)
        write_am_mvn(run_dir / CMVN_FILE, means, stds)


def prepare_assets(config: dict, run_dir: Path, dist_info: DistInfo):
    """(tokenizer, cmvn_file or None) on every rank, built once by rank 0."""
    group = barrier_group()
    failure: Exception | None = None
    if dist_info.is_main:
        try:
            _make_assets(config, run_dir)
        except Exception as exc:  # tell the others first: they must not wait for files that never come
            failure = exc
            if group is None:
                raise
        error = f"{type(failure).__name__}: {failure}" if failure else None
        names = [name for name in (*TOKENIZER_FILES, CMVN_FILE) if (run_dir / name).is_file()]
        payload = {"error": error, "files": {name: (run_dir / name).read_bytes() for name in names}}
    else:
        payload = None
    payload = broadcast_object(payload, group=group)
    if failure is not None:
        raise failure
    if payload["error"]:
        raise RuntimeError(f"rank 0 could not prepare the tokenizer/CMVN: {payload['error']}")
    if not dist_info.is_main:
        for name, data in payload["files"].items():
            target = run_dir / name
            if not target.is_file() or target.read_bytes() != data:
                atomic_write_bytes(target, data)
    tokenizer_path = _existing_tokenizer(run_dir)
    if tokenizer_path is None:
        raise FileNotFoundError(f"{run_dir}: no tokenizer after preparation")
    tokenizer = load_tokenizer(tokenizer_path)
    cmvn_file = run_dir / CMVN_FILE if config.get("cmvn") == "global" else None
    return tokenizer, cmvn_file
