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
from test_run_pretraining import corpus  # noqa: F401  (fixture)

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


def test_pretraining_runs_in_this_process_and_snapshots_the_budget(corpus, tmp_path, monkeypatch):
    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"compare started a subprocess: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    tiny = dict(
        work_dir=str(tmp_path / "work"),
        model_size="small",
        model_hparam_overrides='{"hidden_size": 64, "num_hidden_layers": 1, '
        '"num_attention_heads": 1, "intermediate_size": 128}',
        embedding_size=64,
        max_seq_length=64,
        train_batch_size=8,
        iterations_per_loop=5,
        num_points=2,
        use_xla=False,
    )
    vocab_size = len(corpus["vocab"].read_text().splitlines())
    with flagsaver.flagsaver(**tiny, flops_budget=1.0):
        per_step = compare.variant_flops("electra", vocab_size)[0].per_step
    with flagsaver.flagsaver(**tiny, flops_budget=10 * per_step):
        pretrained = compare.pretrain("electra", str(corpus["vocab"]), corpus["records"])
    assert pretrained["total_steps"] == 10
    assert [p["step"] for p in pretrained["points"]] == [5, 10]
    for point in pretrained["points"]:
        encoder = ElectraEncoder.from_pretrained(point["discriminator"])
        assert encoder.config.hidden_size == 64
    # The two snapshots differ: the second is 5 steps further on.
    first, second = (
        ElectraEncoder.from_pretrained(p["discriminator"]) for p in pretrained["points"]
    )
    assert not np.array_equal(first.weights[0].numpy(), second.weights[0].numpy())
    log = (tmp_path / "work" / "logs" / "pretrain_electra.log").read_text()
    assert "Resumed from" in log and "step 10/10" in log


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


def test_finetune_runs_in_process_and_resumes(shared_data, tmp_path, monkeypatch):
    vocab = tmp_path / "vocab.txt"
    train = _raw_conllu(shared_data / "ud_english_ewt" / "en_ewt-ud-train.conllu.gz")[:64]
    words = {word.lower() for sentence in train for word, _ in sentence}
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)) + "\n"
    )

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"compare started a subprocess: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    with flagsaver.flagsaver(
        work_dir=str(tmp_path / "work"),
        downstream_dir=str(shared_data),
        model_size="small",
        model_hparam_overrides='{"hidden_size": 32, "num_hidden_layers": 1}',
        finetune_train_examples=64,
        finetune_dev_examples=8,  # their tags all occur in the first 64 training sentences
        finetune_epochs=1.0,
        finetune_max_seq_length=32,
        finetune_batch_size=16,
        seeds=["1", "2"],
        finetune_extra_flags=["--eval_batch_size=16", "--learning_rate=1e-3"],
    ):
        data_flags = compare.prepare_finetuning_data("pos")
        [point] = compare.pretrain(compare.RANDOM_INIT, str(vocab), records=None)["points"]
        result = compare.finetune(compare.RANDOM_INIT, point, "pos", data_flags)
        model_dir = pathlib.Path(result["model_dir"])
        results_file = model_dir / "results.json"
        assert result == json.loads(results_file.read_text())
        assert result["task"] == "pos" and result["metric"] == "token_accuracy"
        # 64 sentences in windows of 32 pieces, 16 windows a step: 4 steps or a few more.
        assert list(result["scores"]) == ["1", "2"] and 4 <= result["steps"] <= 8
        settings = json.loads((model_dir / "finetuning_settings.json").read_text())
        assert (settings["max_seq_length"], settings["train_batch_size"]) == (32, 16)
        # --finetune_extra_flags come last, so they override compare's own learning rate.
        assert (settings["eval_batch_size"], settings["learning_rate"]) == (16, 1e-3)
        written = results_file.stat().st_mtime_ns
        assert compare.finetune(compare.RANDOM_INIT, point, "pos", data_flags) == result
        assert results_file.stat().st_mtime_ns == written
