"""build_pretraining_dataset: example layout, document boundaries, determinism, errors."""

import collections
import gzip
import hashlib
import itertools
import json
import os
import pathlib
import random
import subprocess
import sys

import pytest
import tensorflow as tf

from electra_tf.data import pretraining_input, pretraining_records, tokenization
from electra_tf.data import vocab as vocab_lib

MAX_SEQ_LENGTH = 64


def read_examples(output_dir):
    """Every example in the shards, as a dict of int lists."""
    files = sorted(tf.io.gfile.glob(f"{output_dir}/{pretraining_records.SHARD_PREFIX}-*"))
    examples = []
    for record in tf.data.TFRecordDataset(files):
        example = tf.train.Example.FromString(record.numpy())
        examples.append(
            {
                name: list(example.features.feature[name].int64_list.value)
                for name in pretraining_input.FEATURE_NAMES
            }
        )
    return examples


@pytest.fixture(scope="module")
def wiki_corpus(shared_data, tmp_path_factory):
    """~2000 lines of real wikipedia text in two files (one gzipped), with a vocabulary."""
    corpus_dir = tmp_path_factory.mktemp("wiki_corpus")
    source = shared_data / "pretrain_en_wikipedia"
    with gzip.open(source / "wiki_en_001.txt.gz", "rt", encoding="utf-8") as f:
        (corpus_dir / "part_a.txt").write_text("".join(itertools.islice(f, 1000)), encoding="utf-8")
    with gzip.open(source / "wiki_en_002.txt.gz", "rt", encoding="utf-8") as f:
        lines = "".join(itertools.islice(f, 1000))
    with gzip.open(corpus_dir / "part_b.txt.gz", "wt", encoding="utf-8") as f:
        f.write(lines)
    (corpus_dir / "SOURCE.md").write_text("not corpus text")
    vocab_file = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
    vocab_lib.write_vocab(
        vocab_lib.build_vocab(
            [str(corpus_dir / "part_a.txt")], vocab_size=1500, do_lower_case=True, max_lines=300
        ),
        vocab_file,
    )
    return str(corpus_dir), vocab_file


@pytest.fixture(scope="module")
def wiki_dataset(wiki_corpus, tmp_path_factory):
    corpus_dir, vocab_file = wiki_corpus
    output_dir = str(tmp_path_factory.mktemp("wiki_tfrecords"))
    num_examples = pretraining_records.build_pretraining_dataset(
        pretraining_records.corpus_files(corpus_dir),
        vocab_file,
        output_dir,
        max_seq_length=MAX_SEQ_LENGTH,
        num_out_files=3,
        num_processes=1,
        do_lower_case=True,
        seed=7,
    )
    return output_dir, num_examples


def test_corpus_files_skips_non_text_files(wiki_corpus):
    names = [p.rsplit("/", 1)[1] for p in pretraining_records.corpus_files(wiki_corpus[0])]
    assert names == ["part_a.txt", "part_b.txt.gz"]


def test_examples_have_the_electra_layout(wiki_corpus, wiki_dataset):
    output_dir, num_examples = wiki_dataset
    special = tokenization.special_token_ids(tokenization.load_vocab(wiki_corpus[1]))
    examples = read_examples(output_dir)
    assert len(examples) == num_examples > 500
    num_segments = collections.Counter()
    for example in examples:
        ids, mask, segments = example["input_ids"], example["input_mask"], example["segment_ids"]
        assert len(ids) == len(mask) == len(segments) == MAX_SEQ_LENGTH
        length = sum(mask)
        assert mask == [1] * length + [0] * (MAX_SEQ_LENGTH - length)
        assert ids[length:] == [special.pad] * (MAX_SEQ_LENGTH - length)
        assert special.pad not in ids[:length]
        assert ids[0] == special.cls and ids[length - 1] == special.sep
        seps = [i for i in range(length) if ids[i] == special.sep]
        assert len(seps) in (1, 2)
        num_segments[len(seps)] += 1
        first_end = seps[0] + 1
        assert segments == [0] * first_end + [1] * (length - first_end) + [0] * (
            MAX_SEQ_LENGTH - length
        )
        assert special.cls not in ids[1:length] and special.mask not in ids
    # Wikipedia lines are whole paragraphs, often longer than an example, and
    # a first sentence always goes to the first segment: so many examples have
    # one segment, but short lines (titles, headings) give two.
    assert num_segments[1] > 0 and num_segments[2] > 0.1 * len(examples)
    info = json.loads(open(f"{output_dir}/{pretraining_records.DATASET_INFO_FILE}").read())
    assert info["max_seq_length"] == MAX_SEQ_LENGTH and info["num_examples"] == num_examples
    assert info["vocab_size"] == len(tokenization.load_vocab(wiki_corpus[1]))
    assert info["do_lower_case"] is True and info["strip_accents"] is True


def test_shards_follow_the_original_naming(wiki_dataset):
    names = sorted(
        p.rsplit("/", 1)[1] for p in tf.io.gfile.glob(f"{wiki_dataset[0]}/pretrain_data*")
    )
    assert names == [f"pretrain_data.tfrecord-{i}-of-3" for i in range(3)]


def test_two_processes_write_the_same_examples_as_one(wiki_corpus, wiki_dataset, tmp_path):
    corpus_dir, vocab_file = wiki_corpus
    num_examples = pretraining_records.build_pretraining_dataset(
        pretraining_records.corpus_files(corpus_dir),
        vocab_file,
        str(tmp_path),
        max_seq_length=MAX_SEQ_LENGTH,
        num_out_files=3,
        num_processes=2,
        do_lower_case=True,
        seed=7,
    )
    assert num_examples == wiki_dataset[1]

    def as_multiset(output_dir):
        return collections.Counter(
            tuple(e["input_ids"] + e["segment_ids"]) for e in read_examples(output_dir)
        )

    assert as_multiset(str(tmp_path)) == as_multiset(wiki_dataset[0])


def test_documents_are_never_packed_together(tmp_path):
    """Every sentence names its document; no example may name two."""
    num_docs = 60
    vocab = list(tokenization.SPECIAL_TOKENS) + [f"doc{d}" for d in range(num_docs)] + ["word"]
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    doc_ids = {vocab.index(f"doc{d}") for d in range(num_docs)}
    rng = random.Random(0)
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for file_index in range(2):
        documents = []
        for d in range(file_index * num_docs // 2, (file_index + 1) * num_docs // 2):
            sentences = [
                " ".join([f"doc{d}"] + ["word"] * rng.randint(0, 25))
                for _ in range(rng.randint(1, 12))
            ]
            documents.append("\n".join(sentences))
        (corpus_dir / f"docs_{file_index}.txt").write_text("\n\n".join(documents) + "\n")
    output_dir = tmp_path / "out"
    pretraining_records.build_pretraining_dataset(
        pretraining_records.corpus_files(str(corpus_dir)),
        str(vocab_file),
        str(output_dir),
        max_seq_length=32,
        num_out_files=2,
        seed=3,
    )
    seen_docs = set()
    for example in read_examples(str(output_dir)):
        markers = set(example["input_ids"]) & doc_ids
        assert len(markers) == 1, [vocab[i] for i in example["input_ids"]]
        seen_docs |= markers
    assert seen_docs == doc_ids


def test_blank_corpus_is_an_error_naming_the_files(tmp_path):
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(tokenization.SPECIAL_TOKENS) + "\n")
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(pretraining_records.EmptyCorpusError, match=r"no examples.*empty\.txt"):
        pretraining_records.build_pretraining_dataset(
            pretraining_records.corpus_files(str(corpus_dir)),
            str(vocab_file),
            str(tmp_path / "out"),
            num_out_files=1,
        )


def test_missing_or_textless_corpus_dir_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Corpus directory .*nowhere does not exist"):
        pretraining_records.corpus_files(str(tmp_path / "nowhere"))
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(FileNotFoundError, match=rf"No corpus files in {tmp_path}: .*\*\.txt"):
        pretraining_records.corpus_files(str(tmp_path))


def test_more_processes_than_shards_is_rejected(wiki_corpus, tmp_path):
    with pytest.raises(ValueError, match="num_processes <= num_out_files"):
        pretraining_records.build_pretraining_dataset(
            pretraining_records.corpus_files(wiki_corpus[0]),
            wiki_corpus[1],
            str(tmp_path),
            num_out_files=2,
            num_processes=3,
        )


def _tiny_build(tmp_path, text, output_dir, num_out_files=2, name="a.txt"):
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join([*tokenization.SPECIAL_TOKENS, "the", "cat", "sat"]) + "\n")
    corpus_dir = tmp_path / f"corpus_{name}"
    corpus_dir.mkdir()
    if isinstance(text, bytes):
        (corpus_dir / name).write_bytes(text)
    else:
        (corpus_dir / name).write_text(text)
    return pretraining_records.build_pretraining_dataset(
        pretraining_records.corpus_files(str(corpus_dir)),
        str(vocab_file),
        str(output_dir),
        max_seq_length=8,
        num_out_files=num_out_files,
    )


def _digests(directory):
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in pathlib.Path(directory).iterdir()
    }


def test_a_rebuild_replaces_the_shards_and_keeps_other_files(tmp_path):
    output_dir = tmp_path / "out"
    assert _tiny_build(tmp_path, "the cat sat\n" * 6, output_dir, num_out_files=3) > 0
    (output_dir / "NOTES.md").write_text("mine")
    _tiny_build(tmp_path, "the cat\n" * 6, output_dir, num_out_files=2, name="b.txt")
    assert sorted(os.listdir(output_dir)) == [
        "NOTES.md",
        "dataset_info.json",
        "pretrain_data.tfrecord-0-of-2",
        "pretrain_data.tfrecord-1-of-2",
    ]
    info = json.loads((output_dir / "dataset_info.json").read_text())
    vocab = tokenization.load_vocab(str(tmp_path / "vocab.txt"))
    assert info["vocab_size"] == 8 and info["vocab_sha256"] == tokenization.vocab_sha256(vocab)
    assert info["num_out_files"] == 2
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []


@pytest.mark.parametrize(
    "text, error",
    [
        ("\n\n", r"no examples"),
        (b"the cat\n\xff\xfe sat\n", r"b\.txt:2: not valid UTF-8"),
        (b"not gzip at all", r"not a readable gzip file"),
    ],
    ids=["empty_corpus", "bad_line", "bad_gzip"],
)
def test_a_failed_build_leaves_the_previous_data_as_it_was(tmp_path, text, error):
    output_dir = tmp_path / "out"
    _tiny_build(tmp_path, "the cat sat\n" * 6, output_dir)
    before = _digests(output_dir)
    name = "b.txt.gz" if error.startswith("not a readable gzip") else "b.txt"
    with pytest.raises(ValueError, match=error):
        _tiny_build(tmp_path, text, output_dir, num_out_files=3, name=name)
    assert _digests(output_dir) == before
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []


def test_the_command_reports_a_bad_corpus_in_one_line_and_keeps_the_data(tmp_path):
    output_dir = tmp_path / "out"
    _tiny_build(tmp_path, "the cat sat\n" * 6, output_dir)
    before = _digests(output_dir)
    corpus_dir = tmp_path / "blank"
    corpus_dir.mkdir()
    (corpus_dir / "blank.txt").write_text("\n \n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "electra_tf.build_pretraining_dataset",
            f"--corpus_dir={corpus_dir}",
            f"--vocab_file={tmp_path / 'vocab.txt'}",
            f"--output_dir={output_dir}",
            "--num_out_files=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert "yields no examples" in last_line and "blank.txt" in last_line, result.stderr[-2000:]
    assert _digests(output_dir) == before
