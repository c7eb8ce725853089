"""FullTokenizer and load_vocab: CJK and Korean, accents, special ids, errors, BERT agreement."""

import gzip
import itertools
import re
import unicodedata

import pytest

from electra_tf.data import tokenization
from electra_tf.data import vocab as vocab_lib
from electra_tf.data.tokenization import FullTokenizer

SPECIALS = list(tokenization.SPECIAL_TOKENS)


def read_gz_lines(path, start, count):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = (line.rstrip("\n") for line in f)
        return [line for line in itertools.islice(lines, start, start + count) if line.strip()]


def write_lines(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def pieces_text(tokens):
    return "".join(t[2:] if t.startswith("##") else t for t in tokens)


@pytest.fixture(scope="module")
def cjk_sample(shared_data, tmp_path_factory):
    """A vocabulary learned from the start of the Korean and Chinese files, plus held-out lines."""
    sample = shared_data / "multilingual_sample"
    workdir = tmp_path_factory.mktemp("cjk")
    train_files = [
        write_lines(workdir / f"{name}.txt", read_gz_lines(sample / f"{name}.txt.gz", 0, 800))
        for name in ("ko_wikipedia", "zh_wikipedia")
    ]
    vocab = vocab_lib.build_vocab(
        train_files, vocab_size=8000, do_lower_case=True, strip_accents=False
    )
    vocab_file = str(workdir / "vocab.txt")
    vocab_lib.write_vocab(vocab, vocab_file)
    held_out = {
        name: read_gz_lines(sample / f"{name}.txt.gz", 900, 60)
        for name in ("ko_wikipedia", "zh_wikipedia")
    }
    return vocab_file, held_out


@pytest.fixture(scope="module")
def english_vocab_file(shared_data, tmp_path_factory):
    tokens = vocab_lib.build_vocab(
        [str(shared_data / "pretrain_en_wikipedia" / "wiki_en_000.txt.gz")],
        vocab_size=2000,
        do_lower_case=True,
        max_lines=800,
    )
    path = str(tmp_path_factory.mktemp("en") / "vocab.txt")
    vocab_lib.write_vocab(tokens, path)
    return path


def is_cjk_ideograph(char):
    return unicodedata.name(char, "").startswith("CJK")


def test_learned_vocab_starts_with_special_tokens(cjk_sample):
    vocab = tokenization.load_vocab(cjk_sample[0])
    assert vocab[:5] == SPECIALS
    assert tokenization.special_token_ids(vocab) == (0, 1, 2, 3, 4)


def test_chinese_ideographs_become_single_tokens(cjk_sample):
    vocab_file, held_out = cjk_sample
    tokenizer = FullTokenizer(vocab_file, do_lower_case=True, strip_accents=False)
    lines = held_out["zh_wikipedia"]
    ids = tokenizer.tokenize(lines).to_list()
    unk_rate = sum(i == tokenizer.special.unk for row in ids for i in row) / sum(map(len, ids))
    assert unk_rate < 0.05
    num_ideographs = 0
    for row in ids:
        for token in tokenizer.convert_ids_to_tokens(row):
            if any(is_cjk_ideograph(c) for c in token):
                # An ideograph is always a whole word of its own, never a "##" piece.
                assert len(token) == 1, token
                num_ideographs += 1
    assert num_ideographs > 1000


def test_korean_keeps_hangul_syllables_and_round_trips(cjk_sample):
    vocab_file, held_out = cjk_sample
    tokenizer = FullTokenizer(vocab_file, do_lower_case=True, strip_accents=False)
    lines = held_out["ko_wikipedia"]
    round_tripped = 0
    for line, row in zip(lines, tokenizer.tokenize(lines).to_list()):
        tokens = tokenizer.convert_ids_to_tokens(row)
        if "[UNK]" in tokens:
            continue
        # Pieces put back together give the text without spaces.
        assert pieces_text(tokens) == re.sub(r"\s", "", unicodedata.normalize("NFC", line.lower()))
        round_tripped += 1
    assert round_tripped > len(lines) // 2
    hangul = [
        t
        for row in tokenizer.tokenize(lines).to_list()
        for t in tokenizer.convert_ids_to_tokens(row)
        if re.search(r"[가-힣]", t)
    ]
    assert len(hangul) > 500


def test_accent_stripping_decomposes_hangul_to_jamo_like_bert():
    # BERT strips accents via NFD, which also splits Hangul syllables into
    # jamo; that is why Korean wants strip_accents=False.
    words = tokenization.split_words(tokenization.normalize_text(["한국"], True, True)).to_list()
    assert words == [[unicodedata.normalize("NFD", "한국").encode()]]


@pytest.fixture()
def accent_vocab(tmp_path):
    words = ["cafe", "café", "Cafe", "Café", "naive", "naïve", "resume", "résumé", "##s", ","]
    return write_lines(tmp_path / "vocab.txt", SPECIALS + words)


@pytest.mark.parametrize(
    "do_lower_case, strip_accents, expected",
    [
        (True, None, ["cafe", "naive", "resume"]),
        (True, True, ["cafe", "naive", "resume"]),
        (True, False, ["café", "naïve", "résumé"]),
        (False, None, ["Café", "[UNK]", "[UNK]"]),
        (False, False, ["Café", "[UNK]", "[UNK]"]),
        (False, True, ["Cafe", "[UNK]", "[UNK]"]),
    ],
)
def test_lower_case_and_accent_stripping_are_independent(
    accent_vocab, do_lower_case, strip_accents, expected
):
    tokenizer = FullTokenizer(accent_vocab, do_lower_case, strip_accents)
    # "Café" arrives decomposed (e + combining acute) to check NFC recomposition.
    text = "Cafe\u0301 NAÏVE Résumé"
    assert tokenizer.convert_ids_to_tokens(tokenizer.tokenize([text])[0]) == expected


def test_special_ids_come_from_the_vocab(tmp_path):
    vocab = ["hello", "[MASK]", "world", "[SEP]", "[UNK]", "[CLS]", "##s", "[PAD]", "##hello"]
    tokenizer = FullTokenizer(write_lines(tmp_path / "v.txt", vocab))
    assert tokenizer.special == tokenization.SpecialTokens(pad=7, unk=4, cls=5, sep=3, mask=1)
    assert tokenizer.vocab_size == 9
    assert tokenizer.tokenize(["Hellos unseen"]).to_list() == [[0, 6, 4]]
    # BERT turns any word over 200 characters into [UNK].
    assert tokenizer.tokenize(["hello" * 40, "hello" * 41]).to_list() == [[0] + [8] * 39, [4]]


def test_tokenize_words_gives_pieces_per_word(accent_vocab):
    tokenizer = FullTokenizer(accent_vocab, do_lower_case=True)
    assert tokenizer.tokenize_words(["Cafes,", "naive", "xyz"]) == [[5, 13, 14], [9], [1]]
    assert tokenizer.tokenize_words([]) == []


def test_missing_vocab_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist.*build_vocab"):
        tokenization.load_vocab(str(tmp_path / "nope.txt"))


def test_duplicate_token_names_both_lines(tmp_path):
    path = write_lines(tmp_path / "v.txt", SPECIALS + ["a", "b", "a"])
    with pytest.raises(ValueError, match=r"v\.txt:8: token 'a' duplicates line 6"):
        tokenization.load_vocab(path)


def test_missing_mask_token(tmp_path):
    path = write_lines(tmp_path / "v.txt", SPECIALS[:4] + ["a"])
    with pytest.raises(
        ValueError, match=r"v\.txt lacks the special token\(s\) \[MASK\].*build_vocab"
    ):
        tokenization.load_vocab(path)


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes("\n".join(SPECIALS).encode() + b"\nok\nbad\xff\n")
    with pytest.raises(ValueError, match=r"v\.txt:7: vocabulary is not valid UTF-8"):
        tokenization.load_vocab(str(path))


def test_agrees_with_tf_models_python_tokenizer(shared_data, english_vocab_file):
    from official.nlp.tools import tokenization as oracle_tokenization

    lines = read_gz_lines(shared_data / "pretrain_en_wikipedia" / "wiki_en_005.txt.gz", 0, 3000)
    oracle = oracle_tokenization.FullTokenizer(english_vocab_file, do_lower_case=True)
    tokenizer = FullTokenizer(english_vocab_file, do_lower_case=True)
    ours = tokenizer.tokenize(lines).to_list()
    mismatches = [
        line
        for line, row in zip(lines, ours)
        if row != oracle.convert_tokens_to_ids(oracle.tokenize(line))
    ]
    assert len(lines) > 2000
    assert mismatches == []
