"""End-to-end fine-tuning: a tiny discriminator pre-trained here, then run_finetuning.

The discriminator is pre-trained for a few seconds on a slice of the staged
Wikipedia corpus (so only the pipeline, not the quality, of pre-training is
exercised); fine-tuning on real CoNLL-2000 chunking data must still beat the
majority-class baseline by a wide margin.
"""

import collections
import gzip
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
HIDDEN, LAYERS, SEQ = 64, 2, 64


def _run(module, *args, timeout=300):
    env = dict(
        os.environ,
        PYTHONPATH=str(PROJECT_ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        KERAS_BACKEND="tensorflow",
        CUDA_VISIBLE_DEVICES="",
    )
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _check(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def _sentences(path, limit):
    """The first `limit` blank-line separated blocks of a CoNLL file, as text."""
    blocks = pathlib.Path(path).read_text(encoding="utf-8").strip("\n").split("\n\n")
    return "\n\n".join(blocks[:limit]) + "\n\n"


@pytest.fixture(scope="module")
def discriminator(tmp_path_factory, shared_data):
    """<dir>/discriminator from a ~10 s pre-training run on real Wikipedia text."""
    from electra_tf.data.pretraining_records import build_pretraining_dataset
    from electra_tf.data.vocab import build_vocab, write_vocab

    root = tmp_path_factory.mktemp("pretrain")
    lines = []
    with gzip.open(
        shared_data / "pretrain_en_wikipedia" / "wiki_en_000.txt.gz", "rt", encoding="utf-8"
    ) as f:
        for line in f:
            lines.append(line)
            if len(lines) >= 1200:
                break
    corpus = root / "corpus.txt"
    corpus.write_text("".join(lines), encoding="utf-8")
    vocab_file = str(root / "vocab.txt")
    write_vocab(build_vocab([str(corpus)], 3000, do_lower_case=True), vocab_file)
    build_pretraining_dataset(
        [str(corpus)], vocab_file, str(root / "tfrecords"), max_seq_length=SEQ, num_out_files=2
    )
    _check(
        _run(
            "electra_tf.run_pretraining",
            f"--pretrain_tfrecords={root}/tfrecords/pretrain_data.tfrecord*",
            f"--vocab_file={vocab_file}",
            f"--model_dir={root}/model",
            "--model_size=small",
            f'--model_hparam_overrides={{"hidden_size": {HIDDEN}, "num_hidden_layers": {LAYERS}}}',
            f"--embedding_size={HIDDEN}",
            f"--max_seq_length={SEQ}",
            "--generator_hidden_size=0.5",
            # A low rate: higher ones collapse a 150-step discriminator to constant outputs.
            "--learning_rate=2e-4",
            "--num_warmup_steps=10",
            "--num_train_steps=150",
            "--train_batch_size=32",
            "--iterations_per_loop=75",
            "--save_checkpoints_steps=1000",
        )
    )
    directory = root / "model" / "discriminator"
    assert (directory / "config.json").exists() and (directory / "vocab.txt").exists()
    return directory


@pytest.fixture(scope="module")
def chunk_data(tmp_path_factory, shared_data):
    """A slice of the real CoNLL-2000 chunking data (train / dev)."""
    root = tmp_path_factory.mktemp("chunk")
    source = shared_data / "conll2000_chunking"
    (root / "train.txt").write_text(_sentences(source / "train.txt", 1500), encoding="utf-8")
    (root / "dev.txt").write_text(_sentences(source / "test.txt", 300), encoding="utf-8")
    return root


def _finetune(discriminator, model_dir, *args):
    return _run(
        "electra_tf.run_finetuning",
        f"--init_checkpoint={discriminator}",
        f"--model_dir={model_dir}",
        f"--max_seq_length={SEQ}",
        "--train_batch_size=32",
        "--eval_batch_size=64",
        *args,
    )


def _majority_baseline(train_path, dev_path):
    from electra_tf.finetuning import conll, metrics

    counts = collections.Counter(label for s in conll.read_conll(train_path) for label in s.labels)
    majority = counts.most_common(1)[0][0]
    gold = [list(s.labels) for s in conll.read_conll(dev_path)]
    return metrics.entity_scores(gold, [[majority] * len(g) for g in gold]).f1, gold


def test_chunking_two_seeds_beats_majority_baseline(discriminator, chunk_data, tmp_path):
    model_dir = tmp_path / "chunk_model"
    proc = _check(
        _finetune(
            discriminator,
            model_dir,
            "--task_name=chunk",
            f"--data_dir={chunk_data}",
            "--learning_rate=1e-3",
            "--num_train_epochs=3",
            "--seeds=0,1",
        )
    )
    results = json.loads((model_dir / "results.json").read_text())
    baseline, gold = _majority_baseline(chunk_data / "train.txt", chunk_data / "dev.txt")
    print(
        f"chunk entity F1 per seed {results['scores']} (median {results['median']:.4f}) vs "
        f"majority baseline {baseline:.4f}; steps {results['steps']}, "
        f"{results['wall_time_seconds']:.1f}s"
    )
    assert results["task"] == "chunk" and results["metric"] == "entity_f1"
    scores = [results["scores"]["0"], results["scores"]["1"]]
    assert results["median"] == pytest.approx(float(np.median(scores)))
    assert results["mean"] == pytest.approx(float(np.mean(scores)))
    assert results["std"] == pytest.approx(float(np.std(scores)))
    assert results["majority_baseline"] == pytest.approx(baseline)
    assert min(scores) > baseline + 0.25, (scores, baseline, proc.stderr[-3000:])
    assert results["steps"] > 0

    # Word-level predictions: one label per original word, CoNLL layout.
    predicted = (model_dir / "seed_0" / "dev_predictions.conll").read_text().strip("\n")
    sentences = [block.split("\n") for block in predicted.split("\n\n")]
    assert [len(s) for s in sentences] == [len(g) for g in gold]
    words = [line.split("\t")[0] for line in sentences[0]]
    first_gold = (chunk_data / "dev.txt").read_text().split("\n\n")[0].split("\n")
    assert words == [line.split()[0] for line in first_gold]
    from electra_tf.finetuning import metrics

    rescored = metrics.entity_scores(
        gold, [[row.split("\t")[1] for row in s] for s in sentences]
    ).f1
    assert rescored == pytest.approx(results["scores"]["0"], abs=1e-6)


def test_layerwise_lr_multipliers_on_real_model_paths(discriminator):
    from electra_tf.finetuning.models import ElectraForTokenClassification
    from electra_tf.model.config import ElectraConfig
    from electra_tf.training.optimization import AdamWeightDecay, layerwise_lr_multipliers

    config = ElectraConfig.load(str(discriminator / "config.json"))
    model = ElectraForTokenClassification(config, num_labels=5)
    model.build()
    paths = [v.path for v in model.trainable_variables]
    assert any("/electra/layer_1/" in p for p in paths)
    assert any("/task_specific/dense/" in p for p in paths)

    def by_part(multipliers):
        parts = {}
        for path, mult in multipliers.items():
            part = (
                "head"
                if "/task_specific/" in path
                else "embeddings"
                if "/embeddings/" in path
                else path.split("/electra/")[1].split("/")[0]
            )
            parts.setdefault(part, set()).add(round(mult, 10))
        return {k: v.pop() for k, v in parts.items() if len(v) == 1}

    d = 0.8
    correct = by_part(layerwise_lr_multipliers(paths, LAYERS, d))
    assert correct == pytest.approx(
        {"head": 1.0, "layer_1": d, "layer_0": d**2, "embeddings": d**3}
    )
    original = by_part(layerwise_lr_multipliers(paths, LAYERS, d, original_off_by_one=True))
    assert original == pytest.approx(
        {"head": 1.0, "layer_1": d**2, "layer_0": d**3, "embeddings": d**4}
    )
    optimizer = AdamWeightDecay(
        model.trainable_variables,
        lambda step: 1e-3,
        lr_multipliers=layerwise_lr_multipliers(paths, LAYERS, d),
    )
    top = paths.index(next(p for p in paths if "/layer_1/query/kernel" in p))
    assert optimizer._lr_multipliers[top] == pytest.approx(d)


def test_models_outputs_config_and_encoder_loading(discriminator, tmp_path):
    import tensorflow as tf

    from electra_tf.convert.load import UnknownCheckpointFormat, copy_encoder_weights, load_encoder
    from electra_tf.convert.report import ConversionError
    from electra_tf.finetuning import models
    from electra_tf.model.config import ElectraConfig
    from electra_tf.training import stateless_random

    config = ElectraConfig.load(str(discriminator / "config.json"))
    ids = tf.constant([[2, 10, 11, 3, 12, 13, 3, 0]])
    features = {
        "input_ids": ids,
        "input_mask": tf.cast(ids > 0, tf.int32),
        "segment_ids": tf.constant([[0, 0, 0, 0, 1, 1, 1, 0]]),
        "label_ids": tf.constant([1]),
        "start_positions": tf.constant([4]),
        "end_positions": tf.constant([5]),
        "is_impossible": tf.constant([0]),
    }
    key = stateless_random.key_from_seed(tf.constant([1, 2], tf.int64))
    pretrained = load_encoder(str(discriminator)).encoder
    for model, shape in (
        (models.ElectraForSequenceClassification(config, 3), (1, 3)),
        (models.ElectraForSequenceClassification(config, 1, is_regression=True), (1,)),
        (models.ElectraForQuestionAnswering(config, version_2=True), None),
    ):
        model.build()
        copy_encoder_weights(pretrained, model.encoder)
        out = model(features)
        if shape is None:
            assert out["start_logits"].shape == (1, 8) and out["answerable_logit"].shape == (1,)
            # Only the passage (segment 1) and [CLS] can hold an answer.
            assert float(out["start_logits"][0, 1]) < -500 and float(out["end_logits"][0, 7]) < -500
        else:
            assert out.shape == shape
        loss, stats = model.compute_loss_and_stats(
            features, model.loss_denominators(features), key, tf.range(1)
        )
        assert np.isfinite(float(loss)) and stats["examples"] == 1
        clone = type(model).from_config(model.get_config())
        assert clone.get_config() == model.get_config()
    # Same encoder, different weights: loaded ones are the pre-trained ones.
    encoder_var = model.encoder.embeddings.word_embeddings
    reader = tf.train.load_checkpoint(str(discriminator / "encoder.ckpt"))
    saved = [
        reader.get_tensor(n)
        for n, s in tf.train.list_variables(str(discriminator / "encoder.ckpt"))
        if s == list(encoder_var.shape)
    ]
    assert any(np.array_equal(encoder_var.numpy(), t) for t in saved)

    small_vocab = tmp_path / "vocab.txt"
    small_vocab.write_text(
        "".join(
            token + "\n" for token in (discriminator / "vocab.txt").read_text().split("\n")[:200]
        )
    )
    with pytest.raises(
        models.EncoderMismatchError,
        match=f"model vocab {config.vocab_size} .* vs {small_vocab} 200",
    ):
        models.check_vocab_size(config.vocab_size, str(small_vocab), str(discriminator))
    wider = models.ElectraForTokenClassification(config.replace(hidden_size=128), 3)
    wider.build()
    with pytest.raises(
        ConversionError,
        match=r"layer_0/attention/self/query/kernel +\(128, 128\) +\(64, 64\) +shape differs",
    ):
        copy_encoder_weights(pretrained, wider.encoder)
    with pytest.raises(UnknownCheckpointFormat, match="nowhere does not exist"):
        load_encoder(str(tmp_path / "nowhere"))


def test_bad_input_reaches_the_user_readably(discriminator, chunk_data, tmp_path):
    # Unknown label in the dev file: file and line named, no traceback.
    bad_dev = tmp_path / "dev.txt"
    lines = (chunk_data / "dev.txt").read_text().split("\n")[:30]
    lines[6] = lines[6].rsplit(" ", 1)[0] + " B-NOPE"
    bad_dev.write_text("\n".join(lines) + "\n")
    proc = _finetune(
        discriminator,
        tmp_path / "m1",
        "--task_name=chunk",
        f"--train_file={chunk_data / 'train.txt'}",
        f"--dev_file={bad_dev}",
        "--max_train_steps=1",
    )
    assert proc.returncode != 0
    assert f"{bad_dev}:7" in proc.stderr and "B-NOPE" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr

    # A vocabulary of another size than the pre-trained model's.
    vocab = tmp_path / "vocab.txt"
    tokens = (discriminator / "vocab.txt").read_text().split("\n")
    vocab.write_text("".join(t + "\n" for t in tokens[:500]))
    proc = _finetune(
        discriminator,
        tmp_path / "m2",
        "--task_name=chunk",
        f"--data_dir={chunk_data}",
        f"--vocab_file={vocab}",
        "--max_train_steps=1",
    )
    assert proc.returncode != 0
    model_vocab = len([t for t in tokens if t])
    assert f"model vocab {model_vocab}" in proc.stderr and f"{vocab} 500" in proc.stderr, (
        proc.stderr[-2000:]
    )
    assert "Traceback" not in proc.stderr

    # Flags are validated before any work, naming the flag.
    proc = _finetune(
        discriminator,
        tmp_path / "m3",
        "--task_name=chunk",
        f"--data_dir={chunk_data}",
        "--warmup_proportion=1.5",
    )
    assert proc.returncode != 0 and "--warmup_proportion" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_glue_sst2_pipeline(discriminator, shared_data, tmp_path):
    glue_dir = tmp_path / "glue" / "SST-2"
    glue_dir.mkdir(parents=True)
    for split, n in (("train", 480), ("dev", 120)):
        rows = (
            (shared_data / "glue" / "SST-2" / f"{split}.tsv")
            .read_text(encoding="utf-8")
            .split("\n")
        )
        (glue_dir / f"{split}.tsv").write_text("\n".join(rows[: n + 1]) + "\n", encoding="utf-8")
    model_dir = tmp_path / "sst"
    _check(
        _finetune(
            discriminator,
            model_dir,
            "--task_name=sst-2",
            f"--data_dir={tmp_path / 'glue'}",
            "--learning_rate=3e-4",
            "--num_train_epochs=2",
            "--max_train_steps=20",
        )
    )
    results = json.loads((model_dir / "results.json").read_text())
    assert results["task"] == "sst-2" and results["metric"] == "accuracy"
    assert results["steps"] == 20
    score = results["scores"]["0"]
    assert math.isfinite(score) and 0.0 <= score <= 1.0
    assert results["per_seed"][0]["dev"]["accuracy"] == score
    assert 0.0 < results["majority_baseline"] < 1.0
    predictions = (model_dir / "seed_0" / "dev_predictions.tsv").read_text().strip().split("\n")
    assert predictions[0] == "index\tprediction" and len(predictions) == 121
    assert {p.split("\t")[1] for p in predictions[1:]} <= {"0", "1"}
    gold = [r.split("\t")[1] for r in (glue_dir / "dev.tsv").read_text().strip().split("\n")[1:]]
    accuracy = np.mean([p.split("\t")[1] == g for p, g in zip(predictions[1:], gold)])
    assert accuracy == pytest.approx(score)


def _iob2_words(path):
    """(words, tags) per sentence of a word<TAB>tag predictions file."""
    blocks = pathlib.Path(path).read_text(encoding="utf-8").strip("\n").split("\n\n")
    return [tuple(zip(*(row.split("\t") for row in block.split("\n")))) for block in blocks]


@pytest.fixture(scope="module")
def finetuned_in_process(discriminator, chunk_data, tmp_path_factory):
    """electra_tf.finetune called in this process: (settings, returned result)."""
    import electra_tf

    settings = electra_tf.FinetuningSettings(
        task_name="conll2000",  # an alias: stored as "chunk"
        data_dir=str(chunk_data),
        init_checkpoint=str(discriminator),
        model_dir=str(tmp_path_factory.mktemp("in_process") / "chunk"),
        max_seq_length=SEQ,
        eval_batch_size=64,
        learning_rate=1e-3,
        num_train_epochs=2,
        seeds=[3],
    )
    return settings, electra_tf.finetune(settings)


def test_finetune_in_process_returns_what_results_json_holds(finetuned_in_process, chunk_data):
    from electra_tf.finetuning import metrics
    from electra_tf.finetuning.settings import FinetuningSettings

    settings, result = finetuned_in_process
    model_dir = pathlib.Path(settings.model_dir)
    assert result == json.loads((model_dir / "results.json").read_text())
    assert (result["task"], result["metric"], result["model_dir"]) == (
        "chunk",
        "entity_f1",
        settings.model_dir,
    )
    [seed_result] = result["per_seed"]
    assert list(result["scores"]) == ["3"] and seed_result["seed"] == 3
    assert seed_result["best_step"] in [h["step"] for h in seed_result["history"]]
    assert result["scores"]["3"] == max(h["entity_f1"] for h in seed_result["history"])
    baseline, gold = _majority_baseline(chunk_data / "train.txt", chunk_data / "dev.txt")
    assert result["majority_baseline"] == pytest.approx(baseline)
    assert result["scores"]["3"] > baseline + 0.1, (result["scores"], baseline)
    # The returned score is the written predictions' score, recomputed here.
    predicted = [list(tags) for _, tags in _iob2_words(seed_result["dev_predictions"])]
    assert metrics.entity_scores(gold, predicted).f1 == pytest.approx(result["scores"]["3"])
    # The run's settings file reloads to the settings that ran, vocabulary and casing resolved.
    saved = FinetuningSettings.load(str(model_dir / "finetuning_settings.json"))
    assert saved == settings.replace(
        vocab_file=str(pathlib.Path(settings.init_checkpoint) / "vocab.txt"), do_lower_case=True
    )


def test_export_in_process_loads_in_a_fresh_process(finetuned_in_process, tmp_path):
    from test_export import signature_in_fresh_process

    import electra_tf
    from electra_tf.finetuning import conll

    settings, result = finetuned_in_process
    export_dir = tmp_path / "models" / "chunk"
    path = electra_tf.export(result["model_dir"], str(export_dir))
    assert path == str(export_dir / "1")
    assert electra_tf.export(result["model_dir"], str(export_dir)) == str(export_dir / "2")
    # Sentences whose words the serving word splitter leaves whole (letters and digits, or one
    # punctuation mark): the server's labels must be the fine-tuned model's dev predictions.
    sentences = [
        (words, tags)
        for words, tags in _iob2_words(result["per_seed"][0]["dev_predictions"])
        if all(w.isalnum() or (len(w) == 1 and not w.isspace()) for w in words)
    ][:12]
    assert len(sentences) >= 5
    report = signature_in_fresh_process(
        {"version_dir": pathlib.Path(path)}, [" ".join(words) for words, _ in sentences]
    )
    assert report["signatures"] == ["predict_ids", "serving_default"]
    outputs = report["outputs"]
    for i, (words, tags) in enumerate(sentences):
        n = outputs["num_words"][i]
        assert outputs["tokens"][i][:n] == list(words)
        assert conll.bioes_to_iob2(outputs["labels"][i][:n]) == list(tags), words


def _encoder_weights_kept(discriminator, finetuned_model_dir, seed):
    """How many of the pre-trained encoder's weights the seed's best checkpoint holds unchanged."""
    import tensorflow as tf

    from electra_tf.convert.load import load_encoder
    from electra_tf.filenames import BEST_CHECKPOINT_DIR, BEST_CHECKPOINT_PREFIX, SEED_DIR_PREFIX

    reader = tf.train.load_checkpoint(
        str(
            pathlib.Path(finetuned_model_dir)
            / f"{SEED_DIR_PREFIX}{seed}"
            / BEST_CHECKPOINT_DIR
            / BEST_CHECKPOINT_PREFIX
        )
    )
    saved = [
        reader.get_tensor(k)
        for k, dtype in reader.get_variable_to_dtype_map().items()
        if dtype.is_floating and "OPTIMIZER" not in k
    ]
    pretrained = [w.numpy() for w in load_encoder(str(discriminator)).encoder.weights]
    kept = sum(any(s.shape == w.shape and np.array_equal(s, w) for s in saved) for w in pretrained)
    return kept, len(pretrained)


def test_freeze_encoder_trains_only_the_head(discriminator, chunk_data, finetuned_in_process):
    import electra_tf

    frozen = finetuned_in_process[0].replace(
        model_dir=str(pathlib.Path(finetuned_in_process[0].model_dir).parent / "frozen"),
        freeze_encoder=True,
        learning_rate=5e-3,
    )
    result = electra_tf.finetune(frozen)
    kept, total = _encoder_weights_kept(discriminator, frozen.model_dir, seed=3)
    assert kept == total, f"{total - kept} of {total} encoder weights changed"
    baseline, _ = _majority_baseline(chunk_data / "train.txt", chunk_data / "dev.txt")
    assert result["scores"]["3"] > baseline + 0.1, (result["scores"], baseline)
    # The same check on the unfrozen run: fine-tuning moves (almost) every encoder weight.
    kept, total = _encoder_weights_kept(discriminator, finetuned_in_process[0].model_dir, seed=3)
    assert kept < total // 4, f"{kept} of {total} encoder weights unchanged without freezing"
