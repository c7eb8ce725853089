"""GLUE readers on the staged TSVs, the generic loader and pair encoding."""

import collections
import json

import numpy as np
import pytest

from electra_tf.data import tokenization
from electra_tf.finetuning import glue

_EXPECTED = {  # task: {split: (rows, label counts or None)}
    "CoLA": {
        "train": (8551, {"1": 6023, "0": 2528}),
        "dev": (1043, {"1": 721, "0": 322}),
        "test": (1063, None),
    },
    "SST-2": {
        "train": (67349, {"1": 37569, "0": 29780}),
        "dev": (872, {"1": 444, "0": 428}),
        "test": (1821, None),
    },
    "RTE": {
        "train": (2490, {"entailment": 1249, "not_entailment": 1241}),
        "dev": (277, {"entailment": 146, "not_entailment": 131}),
        "test": (3000, None),
    },
    "STS-B": {"train": (5749, None), "dev": (1500, None), "test": (1379, None)},
    "WNLI": {
        "train": (635, {"0": 323, "1": 312}),
        "dev": (71, {"0": 40, "1": 31}),
        "test": (146, None),
    },
    "QNLI": {"dev": (5463, {"entailment": 2702, "not_entailment": 2761}), "test": (5463, None)},
}


@pytest.mark.parametrize("task", sorted(_EXPECTED))
def test_staged_glue_counts_and_labels(shared_data, task):
    spec = glue.get_task(task)
    for split, (rows, counts) in _EXPECTED[task].items():
        examples = glue.read_glue(task, shared_data / "glue", split)
        assert len(examples) == rows, (task, split)
        assert all(e.text_a for e in examples)
        is_pair = spec.text_b is not None
        assert all((e.text_b is not None) == is_pair for e in examples)
        if split == "test":
            assert all(e.label is None for e in examples)
        elif spec.is_regression:
            scores = np.array([e.label for e in examples])
            assert scores.min() >= 0.0 and scores.max() <= 5.0
        else:
            assert dict(collections.Counter(e.label for e in examples)) == counts
            assert set(counts) == set(spec.labels)


def test_task_metadata_and_folder_forms(shared_data):
    assert glue.get_task("CoLA").metric == "mcc"
    assert glue.get_task("sts-b").is_regression
    assert glue.get_task("STSB").num_labels == 1
    assert glue.get_task("mrpc").metric == "f1"
    assert glue.get_task("mnli").labels == ("contradiction", "entailment", "neutral")
    with pytest.raises(KeyError, match="unknown GLUE task"):
        glue.get_task("squad")
    a = glue.read_glue("cola", shared_data / "glue" / "CoLA", "dev")
    b = glue.read_glue("cola", shared_data / "glue", "dev")
    assert a == b
    assert a[0].text_a == "The sailors rode the breeze clear of the rocks."
    sst = glue.read_glue("sst-2", shared_data / "glue", "dev")
    assert sst[0].text_a.startswith("it 's a charming")
    with pytest.raises(FileNotFoundError):
        glue.read_glue("mrpc", shared_data / "glue", "train")


def test_mnli_mrpc_qqp_layouts(tmp_path):
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    header = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
        "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
        "sentence1\tsentence2\tlabel1\tgold_label"
    )
    (mnli / "dev_matched.tsv").write_text(
        header + '\n0\t1\t2\tg\t(a)\t(b)\t(A)\t(B)\tA "quoted" one.\tB.\tneutral\tneutral\n',
        encoding="utf-8",
    )
    ex = glue.read_glue("mnli", tmp_path, "dev_matched")
    assert ex[0].text_a == 'A "quoted" one.' and ex[0].label == "neutral"
    mrpc = tmp_path / "MRPC"
    mrpc.mkdir()
    (mrpc / "train.tsv").write_text(
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said.\tHe spoke.\n",
        encoding="utf-8",
    )
    ex = glue.read_glue("mrpc", tmp_path, "train")
    assert (ex[0].text_a, ex[0].text_b, ex[0].label) == ("He said.", "He spoke.", "1")
    qqp = tmp_path / "QQP"
    qqp.mkdir()
    (qqp / "train.tsv").write_text(
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "0\t1\t2\tWhy?\tHow?\t0\nbroken row\n1\t3\t4\tA?\tB?\t1\n",
        encoding="utf-8",
    )
    assert [e.label for e in glue.read_glue("qqp", tmp_path, "train")] == ["0", "1"]


def test_glue_tsv_errors_name_file_and_line(tmp_path):
    rte = tmp_path / "RTE"
    rte.mkdir()
    (rte / "train.tsv").write_text(
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n",
        encoding="utf-8",
    )
    with pytest.raises(glue.DataFormatError, match=r"train\.tsv:3: unknown label 'maybe'"):
        glue.read_glue("rte", tmp_path, "train")
    (rte / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\n", encoding="utf-8")
    with pytest.raises(glue.DataFormatError, match=r"dev\.tsv:2: expected 4 tab-separated"):
        glue.read_glue("rte", tmp_path, "dev")


def test_load_tfds_not_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="glue/cola is not downloaded"):
        glue.load_tfds("cola", "dev", data_dir=str(tmp_path))


# ---------------------------------------------------------------- generic


def test_generic_csv_tsv_jsonl(tmp_path):
    csv_path = tmp_path / "data.csv"
    csv_path.write_text('text,label\n"Hello, world",pos\nBye,neg\n', encoding="utf-8")
    ex = glue.read_examples_file(csv_path, labels=["neg", "pos"])
    assert [(e.text_a, e.label) for e in ex] == [("Hello, world", "pos"), ("Bye", "neg")]
    tsv_path = tmp_path / "data.tsv"
    tsv_path.write_text("text_a\ttext_b\tlabel\na\tb\t1.5\n", encoding="utf-8")
    (e,) = glue.read_examples_file(tsv_path, is_regression=True)
    assert (e.text_a, e.text_b, e.label) == ("a", "b", 1.5)
    jl = tmp_path / "data.jsonl"
    jl.write_text(
        json.dumps({"text_a": "x", "text_b": "y", "label": 1})
        + "\n\n"
        + json.dumps({"text": "z"})
        + "\n",
        encoding="utf-8",
    )
    ex = glue.read_examples_file(jl, labels=["0", "1"])
    assert [(e.text_a, e.text_b, e.label) for e in ex] == [("x", "y", "1"), ("z", None, None)]


@pytest.mark.parametrize(
    "name,content,pattern,kwargs",
    [
        ("a.csv", "text,label\nok,1\ntoo,many,fields\n", r"a\.csv:3: expected 2 fields", {}),
        ("b.jsonl", '{"text": "ok"}\n{"text": broken\n', r"b\.jsonl:2: bad JSON", {}),
        (
            "c.jsonl",
            '{"text": "ok"}\n\n{"sentence": "no"}\n',
            r"c\.jsonl:3: no 'text' or 'text_a'",
            {},
        ),
        (
            "d.csv",
            "text,label\nok,pos\nhm,meh\n",
            r"d\.csv:3: unknown label 'meh'",
            {"labels": ["pos", "neg"]},
        ),
        (
            "e.csv",
            "text,label\nok,high\n",
            r"e\.csv:2: label 'high' is not a num",
            {"is_regression": True},
        ),
        ("f.csv", "", r"f\.csv:1: empty file", {}),
    ],
)
def test_generic_loader_errors(tmp_path, name, content, pattern, kwargs):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(glue.DataFormatError, match=pattern):
        glue.read_examples_file(path, **kwargs)


def test_generic_loader_non_utf8(tmp_path):
    path = tmp_path / "g.csv"
    path.write_bytes(b"text,label\nok,1\ncaf\xe9,0\n")
    with pytest.raises(glue.DataFormatError, match=r"g\.csv:3: not valid UTF-8"):
        glue.read_examples_file(path)


# ---------------------------------------------------------------- encoding


def _tokenizer(tmp_path):
    vocab = list(tokenization.SPECIAL_TOKENS) + [
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
        "the",
        "man",
        "is",
        ".",
    ]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return tokenization.FullTokenizer(str(tmp_path / "vocab.txt"))


def test_encode_pairs_truncates_longer_first(tmp_path):
    tok = _tokenizer(tmp_path)
    sp = tok.special
    examples = [
        glue.Example("1", "a b c d e f", "a b", "1"),
        glue.Example("2", "a b", None, "0"),
        glue.Example("3", "a b c", "d e f a b c", None),
    ]
    arr = glue.encode_pairs(examples, tok, max_seq_length=8, labels=["0", "1"])
    ids = arr["input_ids"]
    assert ids.shape == (3, 8) and ids.dtype == np.int32
    toks = [tok.convert_ids_to_tokens(r[: m.sum()]) for r, m in zip(ids, arr["input_mask"])]
    assert toks[0] == ["[CLS]", "a", "b", "c", "[SEP]", "a", "b", "[SEP]"]
    assert toks[1] == ["[CLS]", "a", "b", "[SEP]"]
    # 3 + 6 pieces into 5: the longer (b) loses pieces, b on ties.
    assert toks[2] == ["[CLS]", "a", "b", "c", "[SEP]", "d", "e", "[SEP]"]
    assert arr["segment_ids"][0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert arr["label_ids"].tolist() == [1, 0, -1]
    assert ids[0, 0] == sp.cls
    reg = glue.encode_pairs(examples[:1], tok, 8, is_regression=True)
    assert reg["label_ids"].dtype == np.float32


def test_encode_real_rte(shared_data, tmp_path):
    tok = _tokenizer(tmp_path)
    task = glue.get_task("rte")
    examples = glue.read_glue(task, shared_data / "glue", "dev")
    arr = glue.encode_pairs(examples, tok, 64, labels=task.labels)
    sp = tok.special
    assert (arr["input_ids"][:, 0] == sp.cls).all()
    assert ((arr["input_ids"] == sp.sep).sum(axis=1) == 2).all()
    assert (arr["input_mask"].sum(axis=1) <= 64).all()
    assert set(arr["label_ids"].tolist()) == {0, 1}
    assert arr["input_ids"].shape == (len(examples), 64)
    assert arr["label_ids"].shape == (len(examples),)
    assert arr["segment_ids"].dtype == np.int32
