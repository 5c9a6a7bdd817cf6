"""The setup form's field catalogue: which config keys it edits, on which tab, with which checks.

One :class:`~asr_tui.widgets.form_fields.FieldSpec` per field, grouped by tab. To add a field,
add its spec to the tuple of its tab: the screen builds, checks and places it from here.
Keys are ``engine.config`` dotted keys; choices come from ``engine.config.CHOICES``.
"""

from __future__ import annotations

from asr_tui.widgets.form_fields import (
    FieldSpec, devices, init_param_spec, integer, mapping, number, number_list, path_list, text,
)
from engine.config import CHOICES
from engine.data.tokenizer import DEFAULT_ENGLISH, ENGLISH_UNITS

DATA_FIELDS = (
    FieldSpec("output_dir", "output_dir", text(), help="the run directory (config.yaml, logs, checkpoints)"),
    FieldSpec("train_data_set_list", "train lists", path_list(), browse=True, placeholder="data/train.jsonl",
              help="FunASR jsonl lists, comma separated"),
    FieldSpec("valid_data_set_list", "valid lists", path_list(), browse=True, placeholder="data/valid.jsonl"),
    FieldSpec("test_data_set_list", "test lists", path_list(), browse=True, placeholder="data/test.jsonl"),
)
MODEL_FIELDS = (
    FieldSpec("model", "model", kind="select", choices=CHOICES["model"]),
    FieldSpec("model_conf.ctc_weight", "ctc_weight", number(minimum=0.0, maximum=1.0),
              help="weight of the CTC loss against the attention loss"),
    FieldSpec("model_conf.lsm_weight", "lsm_weight", number(minimum=0.0, maximum=0.99),
              help="label smoothing of the attention decoder"),
    FieldSpec("encoder_conf", "encoder_conf", mapping(), placeholder="{output_size: 256, num_blocks: 12}"),
    FieldSpec("decoder_conf", "decoder_conf", mapping(), placeholder="{num_blocks: 6}"),
    FieldSpec("predictor_conf", "predictor_conf", mapping(), placeholder="{} (paraformer only)",
              help="paraformer's CIF predictor (FunASR's CifPredictorV2 keys)"),
    FieldSpec("frontend_conf.n_mels", "n_mels", integer(minimum=1), help="Kaldi fbank bins"),
    FieldSpec("frontend_conf.lfr_m", "lfr_m", integer(minimum=1), help="low frame rate: frames stacked"),
    FieldSpec("frontend_conf.lfr_n", "lfr_n", integer(minimum=1), help="low frame rate: frames skipped"),
    FieldSpec("frontend_conf.dither", "dither", number(minimum=0.0)),
    FieldSpec("cmvn", "cmvn", kind="select", choices=CHOICES["cmvn"],
              help="global: statistics of the training list, saved as am.mvn"),
    FieldSpec("specaug_conf", "specaug_conf", mapping(), placeholder="{} (no SpecAugment)"),
    FieldSpec("tokenizer_conf.type", "tokenizer", kind="select", choices=("char", "bpe")),
    # None: the key is left out and the engine's default applies (a bpe tokenizer takes no such key)
    FieldSpec("tokenizer_conf.english", "english (char)", kind="select", choices=(None, *ENGLISH_UNITS),
              omit_empty=True, placeholder=f"default ({DEFAULT_ENGLISH})",
              help="English as letters with ▁ between words (as FunASR's CharTokenizer) or as whole words "
                   "(unseen test words become <unk>); CJK characters are units either way"),
    FieldSpec("tokenizer_conf.vocab_size", "vocab_size (bpe)", integer(minimum=2, optional=True), omit_empty=True,
              placeholder="needed for bpe", help="sentencepiece vocabulary size, trained on the training text"),
)
BATCHING_FIELDS = (
    FieldSpec("dataset_conf.batch_type", "batch_type", kind="select", choices=CHOICES["dataset_conf.batch_type"],
              help="example: utterances per batch; length/token: frames per batch"),
    FieldSpec("dataset_conf.batch_size", "batch_size", integer(minimum=1)),
    FieldSpec("dataset_conf.num_workers", "num_workers", integer(minimum=0), help="data loader processes per rank"),
    FieldSpec("dataset_conf.cache_mb", "cache_mb", integer(minimum=0),
              help="keep what later epochs can reuse exactly in memory: features where they are the same at "
                   "every load, else the audio; the numbers do not change (MB per loader and process; 0: off)"),
    FieldSpec("dataset_conf.min_source_length", "min_source_length", integer(minimum=0),
              help="shorter utterances (frames) are dropped and counted"),
    FieldSpec("dataset_conf.max_source_length", "max_source_length", integer(minimum=1),
              help="longer utterances (frames) are dropped and counted"),
    FieldSpec("dataset_conf.max_target_length", "max_target_length", integer(minimum=1)),
    FieldSpec("dataset_conf.shuffle", "shuffle", kind="switch"),
    FieldSpec("dataset_conf.speed_perturb", "speed_perturb", number_list(optional=True, minimum=0.5, maximum=2.0),
              placeholder="off (e.g. 0.9, 1.0, 1.1)",
              help="training audio played at one of these speeds, drawn per utterance and epoch"),
)
TRAINING_FIELDS = (
    FieldSpec("train_conf.max_epoch", "max_epoch", integer(minimum=1)),
    FieldSpec("train_conf.log_interval", "log_interval", integer(minimum=1), help="updates between train events"),
    FieldSpec("train_conf.validate_interval", "validate_interval", integer(minimum=1)),
    FieldSpec("train_conf.save_checkpoint_interval", "save_checkpoint_interval", integer(minimum=1)),
    FieldSpec("train_conf.keep_nbest_models", "keep_nbest_models", integer(minimum=1)),
    FieldSpec("train_conf.avg_nbest_model", "avg_nbest_model", integer(minimum=0)),
    FieldSpec("train_conf.avg_keep_nbest_models_type", "n-best by", kind="select",
              choices=CHOICES["train_conf.avg_keep_nbest_models_type"]),
    FieldSpec("train_conf.patience", "patience", integer(minimum=0), placeholder="0: off",
              help="stop when the n-best metric has not improved for this many validations"),
    FieldSpec("train_conf.accum_grad", "accum_grad", integer(minimum=1)),
    FieldSpec("train_conf.grad_clip", "grad_clip", number(minimum=0.0, exclusive_min=True, optional=True),
              placeholder="no clipping"),
    FieldSpec("train_conf.use_fp16", "use_fp16", kind="switch"),
    FieldSpec("train_conf.use_bf16", "use_bf16", kind="select", choices=CHOICES["train_conf.use_bf16"],
              help="bf16 autocast; auto: where it was measured faster (CPUs with AMX or AVX-512 BF16)"),
    FieldSpec("train_conf.init_param", "init_param", init_param_spec(), placeholder="start from random weights",
              help="a checkpoint to initialise the model from (fine-tuning); PATH:SRC:DST:EXCLUDE,... filters keys "
                   "(e.g. model.pt:::ctc.ctc_lo,decoder.output_layer,decoder.embed re-initialises the output layers)"),
    FieldSpec("train_conf.ft_factor", "ft_factor", number(minimum=0.0, exclusive_min=True),
              help="scales every lr (fine-tuning)"),
    FieldSpec("seed", "seed", integer(minimum=0)),
    FieldSpec("train_conf.resume", "resume", kind="switch", help="continue from output_dir/model.pt if it exists"),
)
DISTRIBUTED_FIELDS = (
    FieldSpec("distributed.nnodes", "nnodes", integer(minimum=1)),
    FieldSpec("distributed.nproc_per_node", "nproc_per_node", integer(minimum=1), help="processes (GPUs) per node"),
    FieldSpec("distributed.node_rank", "node_rank", integer(minimum=0), help="this machine's rank"),
    FieldSpec("distributed.master_addr", "master_addr", text(no_spaces=True), help="address of node 0"),
    FieldSpec("distributed.master_port", "master_port", integer(minimum=1, maximum=65535)),
    FieldSpec("distributed.devices", "devices", devices(), placeholder="all visible GPUs",
              help="CUDA_VISIBLE_DEVICES for the job"),
    FieldSpec("distributed.backend", "backend", kind="select", choices=CHOICES["distributed.backend"]),
)
PREVIEW_STEPS = FieldSpec("(preview)", "preview steps", integer(minimum=1, maximum=10_000_000, optional=True),
                          placeholder="estimated", help="training steps (batches per rank) to draw")
TAB_FIELDS = {"data": DATA_FIELDS, "model": MODEL_FIELDS, "batching": BATCHING_FIELDS,
              "training": TRAINING_FIELDS, "distributed": DISTRIBUTED_FIELDS}
TAB_OF_KEY = {spec.key: tab for tab, specs in TAB_FIELDS.items() for spec in specs}
TABS = (
    ("data", "F2 Data"), ("model", "F3 Model"), ("batching", "F4 Batch"), ("training", "F5 Train"),
    ("optim", "F6 Optim"), ("distributed", "F7 Nodes"), ("run", "F8 Run"),
)


def tab_of_key(key: str) -> str:
    """The tab holding the field of a dotted config key (the Run tab for keys without a field)."""
    if key.startswith("optim_sches"):
        return "optim"
    return TAB_OF_KEY.get(key, "run")
