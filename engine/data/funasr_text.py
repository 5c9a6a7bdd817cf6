"""FunASR 1.4.16's rendering of decoded tokens as text, so that a FunASR model decodes to FunASR's text.

FunASR's models do not join tokens with the tokenizer's ``tokens2text``: their ``inference``
passes what ``tokenizer.ids2tokens`` gives to ``funasr.utils.postprocess_utils.sentence_postprocess``
(Conformer, Transformer: ``models/transformer/model.py``; Paraformer with a CharTokenizer:
``models/paraformer/model.py``). Only a Paraformer with a sentencepiece tokenizer keeps
sentencepiece's own decoding. ``sentence_postprocess`` (without timestamps), as measured on
FunASR 1.4.16 (tests/fixtures/funasr/text/, written by scripts/funasr_fixtures_text.py):

* ``<s>``, ``</s>``, ``<unk>``, ``<OOV>`` are dropped;
* all tokens "Chinese" (U+4E00..U+9FFF, digits, "@"): joined with nothing between them;
* all tokens letters (or "'"): each token is a word, words are joined with single spaces;
* mixed: a Chinese token joins the text directly, without a space after a preceding English word
  ("题", "at", "频" -> "题at频"); an English token is followed by a space; a piece with ``@@`` is
  glued to what follows ("hel@@", "lo" -> "hello"); any other token (punctuation, "▁" pieces) is
  written as it is;
* then single letters separated by spaces merge into an upper-case abbreviation
  ("i", "a", "b" -> "IAB"), and the text is stripped.

Written from those observations (FunASR is a reference here, not a dependency); its quirks are
kept on purpose, because the point is the same text: a punctuation token written between an
English word and a Chinese character takes the place of the space FunASR then removes
("ok", "。", "好" -> "ok 好"), and the "Chinese" test on a whole token compares strings, so
"3rd" counts as Chinese in the all-Chinese test and not in the mixed one.
"""

from __future__ import annotations

DROPPED = ("<s>", "</s>", "<unk>", "<OOV>")
# Removed from a token before the Chinese/letter tests (in this order, as FunASR does).
IGNORED_IN_TESTS = (" ", "</s>", "<s>", "<unk>", "<OOV>")
SPACE = " "


def _cleaned(token: str) -> str:
    for part in IGNORED_IN_TESTS:
        token = token.replace(part, "")
    return token


def _chinese(unit: str) -> bool:
    """FunASR's test: a string comparison, so it looks at the start of a multi-character unit."""
    return "\u4e00" <= unit <= "\u9fff" or "0" <= unit <= "9" or unit == "@"


def _all_chinese(units) -> bool:
    cleaned = [_cleaned(unit) for unit in units]
    return bool(cleaned) and all(_chinese(unit) for unit in cleaned)


def _all_letters(units) -> bool:
    cleaned = [_cleaned(unit) for unit in units]
    return bool(cleaned) and all(unit == "'" or (unit.isalpha() and not _chinese(unit)) for unit in cleaned)


def _is_letter(piece: str) -> bool:
    """One ASCII letter (FunASR tests ``piece.encode().isalpha()``, which only ASCII letters pass)."""
    return len(piece) == 1 and piece.isascii() and piece.isalpha()


def _pieces(tokens: list[str]) -> list[str]:
    """The pieces of text (tokens and single spaces) before abbreviations are merged."""
    if _all_chinese(tokens):
        return [token.replace(SPACE, "") for token in tokens]
    if _all_letters(tokens):
        return [piece for token in tokens for piece in (token, SPACE)]
    pieces: list[str] = []
    glued = ""            # "@@" pieces waiting for the end of their word
    after_word = False    # the last English word's trailing space may be taken back
    for token in tokens:
        if _all_chinese(token):  # the token's characters, one by one
            if after_word:
                pieces.pop()
            pieces.append(token)
            after_word = False
        elif "@@" in token:
            glued += token.replace("@@", "")
            after_word = False
        elif _all_letters(token):
            pieces += [glued + token, SPACE]
            glued = ""
            after_word = True
        else:
            pieces.append(token)
    return pieces


def _merge_abbreviations(pieces: list[str]) -> list[str]:
    """Single letters separated by single spaces ("a", " ", "b") become one upper-case piece ("AB")."""
    out: list[str] = []
    index = 0
    while index < len(pieces):
        end = index
        while (end + 2 < len(pieces) and _is_letter(pieces[end]) and pieces[end + 1] == SPACE
               and _is_letter(pieces[end + 2])):
            end += 2
        if end > index:
            out.append("".join(pieces[i] for i in range(index, end + 1, 2)).upper())
            index = end + 1
        else:
            out.append(pieces[index])
            index += 1
    return out


def sentence_text(tokens) -> str:
    """The text FunASR's ``sentence_postprocess`` writes for ``tokens`` (strings; no timestamps)."""
    kept = [token for token in tokens if token not in DROPPED]
    return "".join(_merge_abbreviations(_pieces(kept))).strip()


TEXT_STYLES = ("engine", "funasr")
# What asr-decode --text-style and the console's decode dialog offer: auto is FunASR's text for a
# FunASR model directory, the engine's for a run (engine.decode.model_dir.text_style_of).
TEXT_STYLE_CHOICES = ("auto", *TEXT_STYLES)


def funasr_text_style(model: str, tokenizer_kind: str) -> str:
    """The text style FunASR 1.4.16's own ``inference`` of ``model`` (the engine's architecture name)
    writes with a ``tokenizer_kind`` ("char": CharTokenizer, "bpe": SentencepiecesTokenizer) tokenizer.

    "funasr": :func:`sentence_text` over what ``ids2tokens`` gives (the tokens; for sentencepiece
    the characters of the decoded sentence). A Paraformer with a sentencepiece tokenizer alone
    keeps sentencepiece's decoding, which is the engine's: "engine".
    """
    return "engine" if (model == "paraformer" and tokenizer_kind == "bpe") else "funasr"


def funasr_english_caveat(model: str, tokenizer_kind: str, token_list) -> str | None:
    """What FunASR 1.4.16 will make of this model's English, when it cannot write it as words."""
    if funasr_text_style(model, tokenizer_kind) != "funasr":
        return None
    if tokenizer_kind == "bpe":
        return ("FunASR 1.4.16's Conformer/Transformer pass the characters of the sentencepiece decoding to "
                "sentence_postprocess, which writes English as upper-case letter runs ('hello world' -> "
                "'HELLO  WORLD'); asr-decode --text-style funasr shows the same")
    if "▁" in token_list:
        return ("this model spells English in letters with '▁' between words (tokenizer_conf.english: letter); "
                "FunASR 1.4.16's sentence_postprocess writes them as upper-case abbreviations "
                "('hello world' -> 'HELLO ▁WORLD'); english: word keeps FunASR's text readable")
    return None
