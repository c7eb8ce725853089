"""Token classification data: reading real CoNLL corpora, errors, alignment."""

import gzip
import logging

import numpy as np
import pytest

from electra_tf.data import tokenization
from electra_tf.finetuning import conll, metrics


def _tiny_tokenizer(tmp_path, words=()):
    vocab = (
        list(tokenization.SPECIAL_TOKENS)
        + [
            "john",
            "lives",
            "in",
            "new",
            "york",
            "un",
            "##aff",
            "##able",
            "a",
            "##b",
            "##c",
            "b",
            "c",
            ".",
        ]
        + list(words)
    )
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return tokenization.FullTokenizer(str(path), do_lower_case=True)


# ---------------------------------------------------------------- reading


def test_read_wikiann(shared_data):
    train = conll.read_conll(shared_data / "wikiann_en" / "train.conll")
    dev = conll.read_conll(shared_data / "wikiann_en" / "dev.conll")
    assert len(train) == 20000 and sum(map(len, train)) == 160394
    assert len(dev) == 10000 and sum(map(len, dev)) == 80536
    labels = conll.LabelMap.from_sentences(train)
    assert labels.labels == ("O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER")
    assert labels.scheme == "BIO"
    first = train[0]
    assert first.line_numbers[0] == 1
    assert len(first.words) == len(first.labels) == len(first.line_numbers)
    # Reading dev against the training labels works (no unknown labels).
    assert len(conll.read_conll(shared_data / "wikiann_en" / "dev.conll", labels=labels)) == 10000


def test_read_conll2000_label_column_last(shared_data):
    train = conll.read_conll(shared_data / "conll2000_chunking" / "train.txt", label_column=-1)
    assert len(train) == 8936 and sum(map(len, train)) == 211727
    assert train[0].words[:3] == ("Confidence", "in", "the")
    assert train[0].labels[:3] == ("B-NP", "B-PP", "B-NP")
    # '#' is a real token (the pound sign) here, not a comment.
    assert sum(w == "#" for s in train for w in s.words) == 36
    pos = conll.read_conll(shared_data / "conll2000_chunking" / "train.txt", label_column=1)
    assert pos[0].labels[:3] == ("NN", "IN", "DT")
    assert conll.LabelMap.from_sentences(train).scheme == "BIO"


def test_read_ud_ewt_conllu(shared_data):
    dev = conll.read_conll(shared_data / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz")
    assert len(dev) == 2001 and sum(map(len, dev)) == 25147
    assert dev[0].words == ("From", "the", "AP", "comes", "this", "story", ":")
    assert dev[0].labels == ("ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT")
    labels = conll.LabelMap.from_sentences(dev)
    assert set(labels.labels) == {
        "NOUN",
        "PUNCT",
        "VERB",
        "PRON",
        "ADP",
        "DET",
        "ADJ",
        "AUX",
        "PROPN",
        "ADV",
        "CCONJ",
        "PART",
        "NUM",
        "SCONJ",
        "SYM",
        "INTJ",
        "X",
    }
    assert labels.scheme is None
    test = conll.read_conll(
        shared_data / "ud_english_ewt" / "en_ewt-ud-test.conllu.gz", labels=labels
    )
    assert len(test) == 2077 and sum(map(len, test)) == 25094


# ---------------------------------------------------------------- errors


def test_unknown_label_in_dev_names_file_and_line(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("a B-PER\nb I-PER\n\nc O\n", encoding="utf-8")
    dev = tmp_path / "dev.txt"
    dev.write_text("a B-PER\nb O\n\nc O\nd B-FOO\n", encoding="utf-8")
    labels = conll.LabelMap.from_sentences(conll.read_conll(train))
    with pytest.raises(conll.ConllFormatError) as e:
        conll.read_conll(dev, labels=labels)
    assert "unknown label 'B-FOO' at" in str(e.value)
    assert f"{dev}:5" in str(e.value)
    assert "labels come from the training file" in str(e.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(conll.ConllFormatError, match=r"empty\.txt:1: empty"):
        conll.read_conll(path)


def test_mismatched_columns(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a NN B-NP\nb NN I-NP\n\nc B-NP\n", encoding="utf-8")
    with pytest.raises(conll.ConllFormatError, match=r"bad\.txt:4: expected 3 columns .* found 2"):
        conll.read_conll(path)


def test_non_utf8(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("a O\n\ncaf\u00e9 O\n".encode("latin-1"))
    with pytest.raises(conll.ConllFormatError, match=r"latin\.txt:3: not valid UTF-8"):
        conll.read_conll(path)


def test_gzip_docstart_and_comments(tmp_path):
    path = tmp_path / "x.txt.gz"
    path.write_bytes(gzip.compress(b"-DOCSTART- O\n\n# a comment line here\nA B-X\nb I-X\n\n# O\n"))
    sents = conll.read_conll(path)
    assert [s.words for s in sents] == [("A", "b"), ("#",)]
    assert sents[0].line_numbers == (4, 5)


# ---------------------------------------------------------------- labels


def test_label_map_roundtrip_and_order(tmp_path):
    s1 = conll.Sentence(("a", "b"), ("I-PER", "O"))
    s2 = conll.Sentence(("c",), ("B-LOC",))
    m = conll.LabelMap.from_sentences([s1, s2])
    assert m.labels == ("O", "B-LOC", "I-PER")
    assert m == conll.LabelMap.from_sentences([s2, s1])
    m.save(tmp_path / "labels.json")
    assert conll.LabelMap.load(tmp_path / "labels.json") == m
    assert m.decode(m.encode(["I-PER", "O"])) == ["I-PER", "O"]
    with pytest.raises(KeyError, match="B-FOO"):
        m.id("B-FOO")


def test_scheme_conversion_keeps_entities(shared_data):
    train = conll.read_conll(shared_data / "wikiann_en" / "train.conll")
    for s in train[:3000]:
        bioes = conll.iob_to_bioes(s.labels)
        assert metrics.get_entities(bioes) == metrics.get_entities(s.labels)
        assert metrics.get_entities(conll.bioes_to_iob2(bioes)) == metrics.get_entities(s.labels)
    assert conll.detect_scheme(conll.iob_to_bioes(["B-X", "I-X", "O", "B-Y"])) == "BIOES"


# ---------------------------------------------------------------- alignment


def test_first_subtoken_alignment(tmp_path):
    tok = _tiny_tokenizer(tmp_path)
    sp = tok.special
    sent = conll.Sentence(("John", "unaffable", "lives"), ("B-PER", "O", "O"))
    m = conll.LabelMap(["O", "B-PER", "I-PER"])
    (f,) = conll.encode_sentences([sent], tok, m, max_seq_length=16)
    assert tok.convert_ids_to_tokens(f.input_ids) == [
        "[CLS]",
        "john",
        "un",
        "##aff",
        "##able",
        "lives",
        "[SEP]",
    ]
    assert f.input_ids[0] == sp.cls and f.input_ids[-1] == sp.sep
    assert f.word_positions == [1, 2, 5]
    assert f.label_weights == [0, 1, 1, 0, 0, 1, 0]
    assert f.label_ids == [0, 1, 0, 0, 0, 0, 0]


def test_windowing_keeps_every_word_and_stitches(tmp_path, caplog):
    tok = _tiny_tokenizer(tmp_path)
    m = conll.LabelMap(["O", "B-X", "I-X"])
    rng = np.random.default_rng(0)
    vocab_words = ["john", "unaffable", "lives", "abc", "new", "york", "."]
    words = [vocab_words[i] for i in rng.integers(0, len(vocab_words), 60)]
    labels = [m.labels[i] for i in rng.integers(0, 3, 60)]
    long_word = "a" + "bc" * 20  # 41 pieces: a ##b ##c ...
    sents = [
        conll.Sentence(tuple(words), tuple(labels)),
        conll.Sentence(("john",), ("B-X",)),
        conll.Sentence(("new", long_word, "york"), ("O", "B-X", "O")),
    ]
    with caplog.at_level(logging.WARNING):
        feats = conll.encode_sentences(sents, tok, m, max_seq_length=12)
    assert "1 word(s) had more than 10 wordpieces" in caplog.text
    assert all(len(f.input_ids) <= 12 for f in feats)
    assert sum(f.sentence_index == 0 for f in feats) >= 6
    covered = [
        w
        for f in feats
        if f.sentence_index == 0
        for w in range(f.first_word, f.first_word + f.num_words)
    ]
    assert covered == list(range(60))
    assert sum(f.num_truncated_words for f in feats) == 1
    arrays = conll.features_to_arrays(feats, 12)
    # Perfect per-token predictions give back the gold labels word for word;
    # shifting every prediction id gives one (other) label per word too.
    assert conll.words_predictions(feats, arrays["label_ids"]) == [list(s.labels) for s in sents]
    shifted = conll.words_predictions(feats, (arrays["label_ids"] + 1) % 3, m)
    assert [len(p) for p in shifted] == [60, 1, 3]
    assert shifted[1] == ["I-X"]
    logits = np.eye(3)[arrays["label_ids"]]  # one-hot "logits"
    assert conll.words_predictions(feats, logits) == [list(s.labels) for s in sents]


def test_end_to_end_real_tokenizer_wikiann(shared_data, tmp_path):
    from electra_tf.data import vocab as vocab_lib

    train_path = shared_data / "wikiann_en" / "train.conll"
    train = conll.read_conll(train_path)
    text = tmp_path / "train_text.txt"
    text.write_text("\n".join(" ".join(s.words) for s in train[:1500]) + "\n", encoding="utf-8")
    vocab = vocab_lib.build_vocab([str(text)], 2000, do_lower_case=True)
    vocab_lib.write_vocab(vocab, str(tmp_path / "vocab.txt"))
    tok = tokenization.FullTokenizer(str(tmp_path / "vocab.txt"))
    labels = conll.LabelMap.from_sentences(train)
    dev = conll.read_conll(shared_data / "wikiann_en" / "dev.conll", labels=labels)[:3000]
    feats = conll.encode_sentences(dev, tok, labels, max_seq_length=16)
    assert len(feats) > len(dev)  # some sentences needed several windows
    arrays = conll.features_to_arrays(feats)
    assert set(arrays) == {"input_ids", "input_mask", "segment_ids", "label_ids", "label_weights"}
    for k, a in arrays.items():
        assert a.dtype == np.int32 and a.shape == (len(feats), 16), k
    label_rows = arrays["label_ids"]
    assert int(arrays["label_weights"].sum()) == sum(map(len, dev))
    preds = conll.words_predictions(feats, label_rows)
    assert preds == [list(s.labels) for s in dev]
    assert metrics.entity_scores([list(s.labels) for s in dev], preds).f1 == 1.0
