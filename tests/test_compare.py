"""experiments.compare: the UD EWT POS data it writes and its random_init baseline."""

import gzip
import json

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from electra_tf.encoder import ElectraEncoder
from electra_tf.experiments import compare
from electra_tf.finetuning import conll
from electra_tf.finetuning.models import ElectraForTokenClassification

FLAGS = flags.FLAGS


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
    with flagsaver.flagsaver(work_dir=str(tmp_path), downstream_dir=str(shared_data),
                             finetune_train_examples=40, finetune_dev_examples=0):
        data_flags = compare.prepare_finetuning_data("pos")
    files = dict(f[2:].split("=", 1) for f in data_flags)
    assert files["task_name"] == "pos"
    train = _written(files["train_file"])
    dev = _written(files["dev_file"])
    raw_train = _raw_conllu(source / "en_ewt-ud-train.conllu.gz")[:40]
    raw_dev = _raw_conllu(source / "en_ewt-ud-dev.conllu.gz")
    assert train == raw_train
    assert dev == raw_dev
    assert len(dev) == 2001 and sum(map(len, dev)) == 25147   # SOURCE.md's counts
    # The dev set holds multiword-token ranges ("don't" = do + n't) and empty nodes (n.m):
    # the comparison above covers both, neither is a word.
    with gzip.open(source / "en_ewt-ud-dev.conllu.gz", "rt", encoding="utf-8") as f:
        ids = [line.split("\t")[0] for line in f if line[:1].isdigit()]
    assert sum("-" in i for i in ids) == 359 and sum("." in i for i in ids) == 4
    # run_finetuning reads the written files back with the same words and tags.
    assert [list(zip(s.words, s.labels)) for s in conll.read_conll(files["dev_file"])] == raw_dev


def test_random_init_is_an_untrained_discriminator_of_the_compared_config(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                               + [f"w{i}" for i in range(59)]) + "\n")
    with flagsaver.flagsaver(work_dir=str(tmp_path / "work"), model_size="small",
                             model_hparam_overrides='{"hidden_size": 32, '
                                                    '"num_hidden_layers": 1}'):
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
    model = ElectraForTokenClassification(expected, 5).load_encoder_weights(directory)
    saved_encoder = ElectraEncoder.from_pretrained(directory)
    assert len(saved_encoder.weights) == len(model.encoder.weights) > 0
    for a, b in zip(saved_encoder.weights, model.encoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    word_embeddings = saved_encoder.embeddings.weights[0].numpy()
    assert word_embeddings.shape == (64, expected.embedding_dim)
    assert 0.5 * expected.initializer_range < word_embeddings.std() < 1.5 * expected.initializer_range
