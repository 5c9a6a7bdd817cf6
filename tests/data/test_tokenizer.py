import pytest

from engine.data.tokenizer import (SPECIAL_TOKENS, build_tokenizer, load_tokenizer, split_units, token_units,
                                   vocabulary_coverage)

TEXTS = ["所有只要处理 data 不管你是做 machine learning 做 deep learning", "he tried to think how it could be",
         "欢迎大家来体验"]


def test_split_units_keeps_cjk_characters_and_english_words():
    assert split_units("处理 data 不管") == ["处", "理", "data", "不", "管"]


@pytest.mark.parametrize("english", ["word", "letter"])
def test_char_tokenizer_round_trip_and_file(tmp_path, english):
    tokenizer = build_tokenizer({"type": "char", "english": english}, TEXTS, tmp_path)
    assert tokenizer.token_list[:4] == SPECIAL_TOKENS
    assert (tokenizer.blank_id, tokenizer.sos_eos_id, tokenizer.unk_id) == (0, 2, 3)
    for text in TEXTS:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    loaded = load_tokenizer(tmp_path)
    assert loaded.token_list == tokenizer.token_list and loaded.english == english
    assert (tmp_path / "tokens.txt").read_text().splitlines()[:4] == SPECIAL_TOKENS
    if english == "word":
        assert "machine" in tokenizer.token_list
    else:
        assert "machine" not in tokenizer.token_list and "m" in tokenizer.token_list


def test_unknown_units_map_to_unk(tmp_path):
    tokenizer = build_tokenizer({"type": "char", "english": "word"}, TEXTS, tmp_path)
    assert tokenizer.encode("你好 zebra") == [tokenizer.encode("你")[0], 3, 3]


def test_english_is_split_into_letters_by_default_as_funasr_does(tmp_path):
    tokenizer = build_tokenizer({"type": "char"}, TEXTS, tmp_path)
    assert tokenizer.english == "letter" and "machine" not in tokenizer.token_list
    assert tokenizer.tokens("处理 data 不管") == ["处", "理", "d", "a", "t", "a", "不", "管"]
    assert tokenizer.tokens("deep learning") == ["d", "e", "e", "p", "▁", "l", "e", "a", "r", "n", "i", "n", "g"]
    # An unseen English word is spelt from known letters instead of becoming <unk>.
    assert 3 not in tokenizer.encode("he think it learned") and tokenizer.decode(
        tokenizer.encode("he think it learned")) == "he think it learned"
    assert load_tokenizer(tmp_path).english == "letter"


@pytest.mark.parametrize("conf, unit, oov", [({"type": "char"}, "letter", 1),
                                             ({"type": "char", "english": "word"}, "word", 2),
                                             ({"type": "bpe", "vocab_size": 50}, "character", 1)])
def test_vocabulary_coverage_counts_units_outside_the_training_inventory(conf, unit, oov):
    name, units = token_units(conf)
    inventory = {u for text in TEXTS for u in units(text)}
    coverage = vocabulary_coverage(["he learned data", "欢迎 zebra 大家"], inventory, units)
    assert name == unit and coverage["utterances"] == 2
    # letters and characters: only "z" is new; words: "learned" and "zebra".
    assert coverage["oov_tokens"] == oov and coverage["utterances_with_oov"] == (1 if oov == 1 else 2)
    assert coverage["oov_rate"] == pytest.approx(oov / coverage["tokens"], abs=1e-6)



def test_bpe_tokenizer_trained_on_text(tmp_path):
    tokenizer = build_tokenizer({"type": "bpe", "vocab_size": 80}, TEXTS * 10, tmp_path)
    assert tokenizer.token_list[:4] == SPECIAL_TOKENS
    assert 4 < tokenizer.vocab_size <= 80
    for text in TEXTS:
        ids = tokenizer.encode(text)
        assert min(ids) > 3 and tokenizer.decode(ids) == text
    assert load_tokenizer(tmp_path / "bpe.model").token_list == tokenizer.token_list


def test_bad_tokenizer_conf_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer({"type": "bpe"}, TEXTS, tmp_path)
    with pytest.raises(ValueError, match="tokenizer_conf.type"):
        build_tokenizer({"type": "wordpiece"}, TEXTS, tmp_path)
    with pytest.raises(ValueError, match="colour"):
        build_tokenizer({"type": "char", "colour": 1}, TEXTS, tmp_path)
