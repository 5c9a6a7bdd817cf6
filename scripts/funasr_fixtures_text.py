"""Record the text FunASR 1.4.16's sentence_postprocess writes for many token sequences (not run by CI).

Run in the FunASR reference virtualenv (funasr==1.4.16), from the repository root:

    /work/funasr-venv/bin/python scripts/funasr_fixtures_text.py [--out tests/fixtures/funasr/text]

FunASR's Conformer, Transformer and (CharTokenizer) Paraformer turn decoded tokens into text with
funasr.utils.postprocess_utils.sentence_postprocess. This script feeds it hand-picked cases
(Chinese/English mixes, "@@" pieces, "▁" pieces, single letters, punctuation, special tokens)
and seeded random sequences drawn from the same kinds of token, plus the characters of decoded
sentences (what a Conformer with a sentencepiece tokenizer passes it), and writes the pairs to
sentence_postprocess.json. tests/data/test_funasr_text.py checks engine.data.funasr_text against
them without FunASR.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 2026
RANDOM_CASES = 600

HAND_PICKED = [
    [], ["<s>"], ["题", "at", "频"], ["hello", "world"], ["他", "hi", "好"], ["i", "a", "b", "他"],
    ["x", "y"], ["好", "a", "b", "好"], ["a"], ["hel@@", "lo", "world"], ["他", "hel@@", "lo", "好"],
    ["hel@@"], ["hel@@", ",", "lo"], ["3", "个", "apple"], ["<unk>", "好"], ["好", "<unk>", "apple"],
    ["don't", "go"], ["APPLE", "他"], ["ok", "。", "好"], ["好", ",", "a"], ["▁he", "llo", "▁world"],
    ["▁hello", "▁world"], ["他", "▁hello", "好"], ["h", "e", "l", "l", "o", "▁", "w", "o", "r", "l", "d"],
    ["3rd", "他"], ["他们", "ok"], ["3rd", "ok"], ["'", "s"], ["<OOV>", "ok"], ["é", "a"], ["a", "é", "b"],
    ["data", "data", "好", "i", "i", "好"], ["ok", " ", "好"], ["@", "a"], ["今天", "天气"], ["a b", "c"],
    ["hello", "world", "好"], ["<s>", "好", "<unk>", "</s>"], ["他", "在", "data", "i", "a", "<unk>"],
]
SENTENCES = ["hello world", "don't stop, ok.", "我们 hello 世界", "the email is simple today", "a b c 他 x",
             "server 析 server at 好", "i  a"]


def pool(repo: Path) -> list[str]:
    tokens: list[str] = []
    for name in ("paraformer/tokens.json", "conformer/model/tokens.json"):
        tokens += json.loads((repo / "tests" / "fixtures" / "funasr" / name).read_text(encoding="utf-8"))
    extra = ["hel@@", "lo", "wor@@", "ld@@", "ab@@", "▁he", "▁", "▁x", "a", "b", "i", "x", "Z", "3", "42", "3rd",
             "。", ",", "'", "-", "<unk>", "<OOV>", "<s>", "</s>", "他们", "@", " ", "é", "ok", "A"]
    return sorted(set(tokens)) + extra * 4  # the hard kinds drawn more often


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--out", type=Path, default=repo / "tests" / "fixtures" / "funasr" / "text")
    args = parser.parse_args()

    import funasr
    from funasr.utils.postprocess_utils import sentence_postprocess

    rng = random.Random(SEED)
    tokens = pool(repo)
    cases = list(HAND_PICKED) + [list(sentence) for sentence in SENTENCES]
    for _ in range(RANDOM_CASES):
        cases.append([rng.choice(tokens) for _ in range(rng.randint(1, 12))])
    records = [{"tokens": case, "text": sentence_postprocess(list(case))[0]} for case in cases]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sentence_postprocess.json"
    path.write_text(json.dumps({"funasr_version": funasr.__version__, "cases": records}, ensure_ascii=False,
                               indent=0) + "\n", encoding="utf-8")
    print(f"wrote {path}: {len(records)} cases")


if __name__ == "__main__":
    main()
