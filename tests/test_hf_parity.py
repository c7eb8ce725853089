"""The HF-Trainer parity experiment at toy scale, so the script cannot rot."""

import json
import os
import subprocess
import sys

import pytest

from electra_tf.data import tokenization
from electra_tf.experiments import hf_finetune_parity

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTENCES = 48


@pytest.fixture(scope="module")
def tiny_discriminator(shared_data, tmp_path_factory):
    """A random 1-layer discriminator whose vocabulary covers the toy data's words."""
    import keras

    from electra_tf.model.config import ElectraConfig
    from electra_tf.model.encoder import ElectraEncoder

    words = set()
    for name in ("conll2000_chunking/train.txt", "conll2000_chunking/test.txt"):
        blocks = hf_finetune_parity._sentence_blocks(str(shared_data / name))[:SENTENCES]
        words.update(row.split()[0].lower() for block in blocks for row in block.split("\n"))
    vocab = [*tokenization.SPECIAL_TOKENS, *sorted(words)]
    directory = tmp_path_factory.mktemp("parity") / "discriminator"
    keras.utils.set_random_seed(0)
    config = ElectraConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    encoder = ElectraEncoder(config)
    encoder(encoder.dummy_inputs())
    encoder.save_pretrained(str(directory))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return directory


def test_toy_run_scores_both_sides_under_both_encodings(tiny_discriminator, tmp_path):
    results = tmp_path / "results.jsonl"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    command = [
        sys.executable,
        "-m",
        "electra_tf.experiments.hf_finetune_parity",
        f"--encoder_dir={tiny_discriminator}",
        f"--output_dir={tmp_path / 'work'}",
        f"--results={results}",
        "--task=chunk",
        "--seeds=0",
        f"--max_sentences={SENTENCES}",
        "--train_batch_size=16",
        "--learning_rate=1e-2",
        "--max_seq_length=32",
    ]
    proc = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    runs = {(r["side"], r["encoding"], r["layerwise_lr_decay"]) for r in rows}
    assert runs == {
        ("hf", "BIO", 0.0),
        ("ours", "BIO", 0.0),
        ("hf", "BIOES", 0.0),
        ("ours", "BIOES", 0.0),
        ("ours", "BIOES", 0.8),
    }
    for row in rows:
        # A model trained 3 steps at a high rate tags most words with frequent chunks (B-NP),
        # so its F1 is above 0 but far from 1; 0 or 1 would mean a broken mapping to words.
        assert 0.0 < row["score"] < 0.9, row
        assert row["examples_per_second"] > 0 and row["num_train_sentences"] == SENTENCES
    table = hf_finetune_parity.markdown_table(rows).splitlines()
    assert len(table) == 2 + len(runs) and all(line.count("|") == 13 for line in table)


def test_hf_first_piece_labels_map_back_to_the_words(shared_data, tmp_path):
    """Gold labels through HF's features and back give the gold tags; cut-off words get 'O'."""
    import numpy as np
    import transformers

    from electra_tf.finetuning import conll

    sentences = conll.read_conll(str(shared_data / "conll2000_chunking" / "test.txt"))[:40]
    names = sorted({tag for s in sentences for tag in s.labels})
    vocab = tmp_path / "vocab.txt"
    pieces = {p for s in sentences for w in s.words for p in (w.lower()[:3], "##" + w.lower()[3:])}
    vocab.write_text("\n".join([*tokenization.SPECIAL_TOKENS, *sorted(pieces)]) + "\n")
    tokenizer = transformers.ElectraTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    label_ids = {name: i for i, name in enumerate(names)}
    max_seq_length = 24  # cuts the longer sentences' last words
    features = hf_finetune_parity.hf_features(tokenizer, sentences, label_ids, max_seq_length)
    logits = np.zeros((len(features), max_seq_length, len(names)), "float32")
    for row, feature in zip(logits, features):
        for position, label in enumerate(feature["labels"]):
            if label != -100:
                row[position, label] = 1.0
    predicted = hf_finetune_parity.hf_word_tags(features, logits, sentences, names)
    cut = 0
    for sentence, feature, tags in zip(sentences, features, predicted):
        kept = sum(lab != -100 for lab in feature["labels"])
        assert tags == list(sentence.labels[:kept]) + ["O"] * (len(sentence.words) - kept)
        cut += len(sentence.words) - kept
    assert cut > 0
