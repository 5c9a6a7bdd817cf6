import pytest

from engine.data.tokenizer import SPECIAL_TOKENS, build_tokenizer, load_tokenizer, split_units

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
    tokenizer = build_tokenizer({"type": "char"}, TEXTS, tmp_path)
    assert tokenizer.encode("你好 zebra") == [tokenizer.encode("你")[0], 3, 3]


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
