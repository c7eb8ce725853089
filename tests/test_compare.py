"""experiments.compare: the UD EWT POS data it writes and its random_init baseline."""

import gzip
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from electra_tf.convert.load import copy_encoder_weights, load_encoder
from electra_tf.experiments import compare
from electra_tf.finetuning import conll
from electra_tf.finetuning.models import ElectraForTokenClassification
from electra_tf.model.encoder import ElectraEncoder

FLAGS = flags.FLAGS
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


def _raw_conllu(path):
    """(FORM, UPOS) per sentence, read straight from the CoNLL-U text: integer IDs only."""
    sentences, current = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if current:
                    sentences.append(current)
                current = []
            elif not line.startswith("#"):
                cols = line.split("\t")
                if cols[0].isdigit():
                    current.append((cols[1], cols[3]))
    return sentences


def _written(path):
    sentences, current = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line == "\n":
                sentences.append(current)
                current = []
            else:
                word, tag = line.rstrip("\n").split("\t")
                current.append((word, tag))
    assert not current, f"{path} does not end with a blank line"
    return sentences


def test_pos_data_lines_up_with_the_ewt_conllu(shared_data, tmp_path):
    source = shared_data / "ud_english_ewt"
    with flagsaver.flagsaver(
        work_dir=str(tmp_path),
        downstream_dir=str(shared_data),
        finetune_train_examples=40,
        finetune_dev_examples=0,
    ):
        data_flags = compare.prepare_finetuning_data("pos")
    files = dict(f[2:].split("=", 1) for f in data_flags)
    assert files["task_name"] == "pos"
    train = _written(files["train_file"])
    dev = _written(files["dev_file"])
    raw_train = _raw_conllu(source / "en_ewt-ud-train.conllu.gz")[:40]
    raw_dev = _raw_conllu(source / "en_ewt-ud-dev.conllu.gz")
    assert train == raw_train
    assert dev == raw_dev
    assert len(dev) == 2001 and sum(map(len, dev)) == 25147  # SOURCE.md's counts
    # The dev set holds multiword-token ranges ("don't" = do + n't) and empty nodes (n.m):
    # the comparison above covers both, neither is a word.
    with gzip.open(source / "en_ewt-ud-dev.conllu.gz", "rt", encoding="utf-8") as f:
        ids = [line.split("\t")[0] for line in f if line[:1].isdigit()]
    assert sum("-" in i for i in ids) == 359 and sum("." in i for i in ids) == 4
    # run_finetuning reads the written files back with the same words and tags.
    assert [list(zip(s.words, s.labels)) for s in conll.read_conll(files["dev_file"])] == raw_dev


def test_random_init_is_an_untrained_discriminator_of_the_compared_config(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)])
        + "\n"
    )
    with flagsaver.flagsaver(
        work_dir=str(tmp_path / "work"),
        model_size="small",
        model_hparam_overrides='{"hidden_size": 32, "num_hidden_layers": 1}',
    ):
        expected = compare.discriminator_config(64)
        pretrained = compare.pretrain(compare.RANDOM_INIT, str(vocab), records=None)
    [point] = pretrained["points"]
    assert point["flops"] == 0 and point["step"] == 0
    directory = point["discriminator"]
    with open(f"{directory}/config.json") as f:
        saved = json.load(f)
    assert saved == expected.to_dict()
    assert (saved["hidden_size"], saved["num_hidden_layers"], saved["vocab_size"]) == (32, 1, 64)
    # run_finetuning's loader accepts it, with the saved (untrained, initializer-drawn) weights.
    model = ElectraForTokenClassification(expected, 5)
    model.build()
    copy_encoder_weights(load_encoder(directory).encoder, model.encoder)
    saved_encoder = ElectraEncoder.from_pretrained(directory)
    assert len(saved_encoder.weights) == len(model.encoder.weights) > 0
    for a, b in zip(saved_encoder.weights, model.encoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    word_embeddings = saved_encoder.embeddings.weights[0].numpy()
    assert word_embeddings.shape == (64, expected.embedding_dim)
    assert (
        0.5 * expected.initializer_range < word_embeddings.std() < 1.5 * expected.initializer_range
    )


def _blocks(path):
    return path.read_text(encoding="utf-8").strip("\n").split("\n\n")


def test_full_conll2000_test_set_scores_a_chunk_tag_the_training_file_lacks(shared_data, tmp_path):
    """CoNLL-2000's test set tags I-LST, its training set only B-LST: with BIOES both are
    spans of a known type, so the whole test set is scored (compare's chunk dev set)."""
    source = shared_data / "conll2000_chunking"
    train = _blocks(source / "train.txt")
    train = train[:60] + [b for b in train[60:] if "B-LST" in b]
    dev = _blocks(source / "test.txt")
    dev = dev[:20] + [b for b in dev[20:] if "I-LST" in b]
    assert not any("I-LST" in b for b in train) and sum(b.count(" I-LST") for b in dev) == 2
    (tmp_path / "train.txt").write_text("\n\n".join(train) + "\n\n", encoding="utf-8")
    (tmp_path / "dev.txt").write_text("\n\n".join(dev) + "\n\n", encoding="utf-8")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            + sorted({line.split()[0].lower() for b in train + dev for line in b.split("\n")})
        )
        + "\n",
        encoding="utf-8",
    )
    vocab_size = sum(1 for _ in vocab.open())
    with flagsaver.flagsaver(
        model_size="small", model_hparam_overrides='{"hidden_size": 32, "num_hidden_layers": 1}'
    ):
        discriminator = tmp_path / "discriminator"
        compare.write_random_init_discriminator(
            compare.discriminator_config(vocab_size), str(vocab), str(discriminator)
        )

    def finetune(dev_file, model_dir):
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            KERAS_BACKEND="tensorflow",
            CUDA_VISIBLE_DEVICES="",
        )
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "electra_tf.run_finetuning",
                "--task_name=chunk",
                f"--init_checkpoint={discriminator}",
                f"--model_dir={model_dir}",
                f"--train_file={tmp_path / 'train.txt'}",
                f"--dev_file={dev_file}",
                "--max_seq_length=32",
                "--train_batch_size=16",
                "--num_train_epochs=1",
                "--seeds=1",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    proc = finetune(tmp_path / "dev.txt", tmp_path / "model")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "model" / "results.json").read_text())
    assert results["metric"] == "entity_f1" and 0.0 <= results["median"] <= 1.0
    predicted = (tmp_path / "model" / "seed_1" / "dev_predictions.conll").read_text()
    assert [len(b.split("\n")) for b in predicted.strip("\n").split("\n\n")] == [
        len(b.split("\n")) for b in dev
    ]
    # A chunk type the training file never has is still an error naming file and line.
    (tmp_path / "dev_foo.txt").write_text(
        dev[0].replace(" B-NP", " B-FOO", 1) + "\n\n", encoding="utf-8"
    )
    proc = finetune(tmp_path / "dev_foo.txt", tmp_path / "model_foo")
    assert proc.returncode != 0 and "unknown label 'B-FOO'" in proc.stderr, proc.stderr[-3000:]
