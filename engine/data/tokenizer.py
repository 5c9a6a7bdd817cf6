"""Tokenizers: characters (FunASR tokens file) and sentencepiece BPE, both trained on the training text.

Ids 0..3 are the same in both: <blank> (CTC blank) 0, <s> 1, </s> 2 (``sos_eos_id``: the
attention decoder starts and ends with it), <unk> 3. The char tokenizer takes CJK
characters as units and English as letters (``english: letter``, the default, as FunASR's
CharTokenizer splits it, with "▁" marking the spaces between words) or as whole words
(``english: word``: an English corpus of free vocabulary then maps every unseen test word to
<unk>; see :func:`vocabulary_coverage`).
"""

from __future__ import annotations

import io
import unicodedata
from collections import Counter
from pathlib import Path

from engine.utils.fileio import atomic_write_bytes, atomic_write_text

SPECIAL_TOKENS = ["<blank>", "<s>", "</s>", "<unk>"]
BLANK_ID, SOS_ID, SOS_EOS_ID, UNK_ID = 0, 1, 2, 3
WORD_BOUNDARY = "▁"
TOKENS_FILE = "tokens.txt"
ENGLISH_UNITS = ("letter", "word")
DEFAULT_ENGLISH = "letter"
BPE_FILE = "bpe.model"


def is_cjk(char: str) -> bool:
    """True for characters written without spaces between words (Han, kana, hangul)."""
    name = unicodedata.name(char, "")
    return name.startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA", "HANGUL"))


def split_units(text: str) -> list[str]:
    """'处理 data 不管' -> ['处', '理', 'data', '不', '管'] (CJK characters, other words whole)."""
    units: list[str] = []
    word: list[str] = []
    for char in text:
        if char.isspace() or is_cjk(char):
            if word:
                units.append("".join(word))
                word = []
            if not char.isspace():
                units.append(char)
        else:
            word.append(char)
    if word:
        units.append("".join(word))
    return units


def join_units(units: list[str]) -> str:
    """Inverse of :func:`split_units`: CJK characters joined directly, words with spaces."""
    pieces: list[str] = []
    previous_cjk = True
    for unit in units:
        unit_cjk = len(unit) == 1 and is_cjk(unit)
        if pieces and not (unit_cjk and previous_cjk):
            pieces.append(" ")
        pieces.append(unit)
        previous_cjk = unit_cjk
    return "".join(pieces)


class CharTokenizer:
    """Characters for CJK, words or letters for other scripts, from a FunASR-style token list."""

    kind = "char"

    def __init__(self, token_list: list[str], english: str = DEFAULT_ENGLISH):
        if token_list[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            # A FunASR model's list (<blank> first, <unk> anywhere, often last): ids as listed.
            if not token_list or token_list[0] != "<blank>" or "<unk>" not in token_list:
                raise ValueError(f"token list must start with {SPECIAL_TOKENS} (or, as FunASR's, with <blank> "
                                 f"and hold <unk>), got {token_list[:4]}")
        if english not in ENGLISH_UNITS:
            raise ValueError(f"tokenizer_conf.english must be 'letter' or 'word', got {english!r}")
        self.token_list = list(token_list)
        self.english = english
        self.token_to_id = {token: index for index, token in enumerate(self.token_list)}
        if len(self.token_to_id) != len(self.token_list):
            duplicates = [t for t, n in Counter(self.token_list).items() if n > 1]
            raise ValueError(f"token list has duplicates: {duplicates[:10]}")

    vocab_size = property(lambda self: len(self.token_list))
    blank_id = BLANK_ID

    @property
    def unk_id(self) -> int:
        return self.token_to_id["<unk>"]

    @property
    def sos_eos_id(self) -> int:
        """</s> (id 2 in the engine's lists); a FunASR list without it: the last id, FunASR's default."""
        return self.token_to_id.get("</s>", len(self.token_list) - 1)

    @property
    def special_ids(self) -> set[int]:
        return {self.token_to_id[t] for t in ("<blank>", "<s>", "</s>") if t in self.token_to_id}

    def tokens(self, text: str) -> list[str]:
        units = split_units(text)
        if self.english == "word":
            return units
        tokens: list[str] = []
        for index, unit in enumerate(units):
            if len(unit) == 1 and is_cjk(unit):
                tokens.append(unit)
                continue
            if index > 0 and not (len(units[index - 1]) == 1 and is_cjk(units[index - 1])):
                tokens.append(WORD_BOUNDARY)
            tokens.extend(unit)
        return tokens

    def encode(self, text: str) -> list[int]:
        unk = self.unk_id
        return [self.token_to_id.get(token, unk) for token in self.tokens(text)]

    def decode(self, ids) -> str:
        special = self.special_ids
        tokens = [self.token_list[int(i)] for i in ids if int(i) not in special]
        if self.english == "word":
            return join_units(tokens)
        # Letters: glue each run of letters back into a word, "▁" separating words.
        units: list[str] = []
        word = ""
        for token in tokens:
            if token == WORD_BOUNDARY or (len(token) == 1 and is_cjk(token)) or token == "<unk>":
                if word:
                    units.append(word)
                    word = ""
                if token != WORD_BOUNDARY:
                    units.append(token)
            else:
                word += token
        if word:
            units.append(word)
        return join_units(units)

    def save(self, out_dir) -> Path:
        path = Path(out_dir) / TOKENS_FILE
        atomic_write_text(path, "".join(f"{token}\n" for token in self.token_list))
        return path


class BpeTokenizer:
    """A sentencepiece BPE model whose ids 0..3 are <blank>, <s>, </s>, <unk>."""

    kind = "bpe"

    def __init__(self, model_proto: bytes):
        import sentencepiece

        self.model_proto = model_proto
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self.token_list = [self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())]

    vocab_size = property(lambda self: len(self.token_list))
    blank_id = BLANK_ID
    sos_eos_id = SOS_EOS_ID
    unk_id = UNK_ID

    def tokens(self, text: str) -> list[str]:
        return self.processor.encode(text, out_type=str)

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def decode(self, ids) -> str:
        return self.processor.decode([int(i) for i in ids if i > SOS_EOS_ID])

    def save(self, out_dir) -> Path:
        path = Path(out_dir) / BPE_FILE
        atomic_write_bytes(path, self.model_proto)
        return path


def train_bpe(texts: list[str], vocab_size: int, character_coverage: float = 1.0) -> bytes:
    """Train a sentencepiece BPE model in memory (no files left behind) and return its bytes."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, model_type="bpe", vocab_size=vocab_size,
        character_coverage=character_coverage, pad_id=BLANK_ID, pad_piece="<blank>", bos_id=SOS_ID,
        bos_piece="<s>", eos_id=SOS_EOS_ID, eos_piece="</s>", unk_id=UNK_ID, unk_piece="<unk>",
        hard_vocab_limit=False, minloglevel=2, num_threads=1,
    )
    return model.getvalue()


def build_char_token_list(texts: list[str], english: str = DEFAULT_ENGLISH) -> list[str]:
    """Special tokens, then every unit of the training text by falling count (ties: by name)."""
    counter: Counter = Counter()
    probe = CharTokenizer(SPECIAL_TOKENS, english)
    for text in texts:
        counter.update(probe.tokens(text))
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    extra = [WORD_BOUNDARY] if english == "letter" else []
    return SPECIAL_TOKENS + extra + [t for t, _ in ordered if t not in SPECIAL_TOKENS and t not in extra]


TOKENIZER_KEYS = {"char": {"type", "english"}, "bpe": {"type", "vocab_size", "character_coverage"}}


def build_tokenizer(tokenizer_conf: dict, texts: list[str], out_dir):
    """Train the tokenizer named by ``tokenizer_conf`` on ``texts``; save tokens.txt or bpe.model."""
    conf = dict(tokenizer_conf or {})
    kind = conf.get("type", "char")
    if kind not in TOKENIZER_KEYS:
        raise ValueError(f"tokenizer_conf.type must be one of {sorted(TOKENIZER_KEYS)}, got {kind!r}")
    unknown = sorted(set(conf) - TOKENIZER_KEYS[kind])
    if unknown:
        raise ValueError(f"tokenizer_conf: unknown key(s) {unknown} for type {kind!r}")
    if not texts:
        raise ValueError("build_tokenizer: no training text")
    if kind == "char":
        english = conf.get("english", DEFAULT_ENGLISH)
        tokenizer = CharTokenizer(build_char_token_list(texts, english), english)
    else:
        if "vocab_size" not in conf:
            raise ValueError("tokenizer_conf.vocab_size is required for type 'bpe'")
        tokenizer = BpeTokenizer(train_bpe(texts, int(conf["vocab_size"]), float(conf.get("character_coverage", 1.0))))
    tokenizer.save(out_dir)
    return tokenizer


def load_tokenizer(path):
    """Load the tokenizer saved in a run directory (bpe.model or tokens.txt), or from that file."""
    path = Path(path)
    if path.is_dir():
        for name in (BPE_FILE, TOKENS_FILE):
            if (path / name).is_file():
                return load_tokenizer(path / name)
        raise FileNotFoundError(f"{path}: no {BPE_FILE} or {TOKENS_FILE} in this directory")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer file not found")
    if path.suffix == ".model":
        return BpeTokenizer(path.read_bytes())
    from engine.funasr.model_dir import read_token_list  # tokens.txt, or FunASR's tokens.json

    tokens = read_token_list(path)
    english = "letter" if WORD_BOUNDARY in tokens else "word"
    try:
        return CharTokenizer(tokens, english)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def token_units(tokenizer_conf: dict | None):
    """(unit name, text -> units) as the configured tokenizer would split text before mapping it to
    ids: letters or words for ``char``, characters for ``bpe`` (BPE merges only characters it saw,
    so an unseen character is its only way to <unk>). Needs no trained tokenizer."""
    conf = dict(tokenizer_conf or {})
    if conf.get("type", "char") == "bpe":
        return "character", lambda text: [c for c in text if not c.isspace()]
    english = conf.get("english", DEFAULT_ENGLISH)
    probe = CharTokenizer(SPECIAL_TOKENS, english)
    return english, probe.tokens


def vocabulary_coverage(texts, inventory, units) -> dict:
    """How much of ``texts`` (split by ``units``) falls outside ``inventory`` (the training units):
    {"tokens", "oov_tokens", "oov_rate", "utterances", "utterances_with_oov", "oov_examples"}."""
    total = oov = with_oov = count = 0
    unseen: Counter = Counter()
    for text in texts:
        split = units(text)
        missing = [u for u in split if u not in inventory]
        count += 1
        total += len(split)
        oov += len(missing)
        with_oov += bool(missing)
        unseen.update(missing)
    return {"tokens": total, "oov_tokens": oov, "oov_rate": round(oov / total, 6) if total else 0.0,
            "utterances": count, "utterances_with_oov": with_oov,
            "oov_examples": [u for u, _ in unseen.most_common(10)]}
