"""Fine-tunes a pre-trained ELECTRA discriminator on a tagging, GLUE or SQuAD task.

    python -m electra_tf.run_finetuning --flagfile=configs/finetune_ner.flags \
        --init_checkpoint=runs/electra_small/discriminator \
        --data_dir=/path/to/wikiann_en --model_dir=runs/ner

--init_checkpoint also takes a Hugging Face ELECTRA directory, a
google-research/electra (TF1) checkpoint or a tf-models-official checkpoint
as downloaded (see electra_tf.load_encoder).

Flag names and defaults follow google-research/electra's
configure_finetuning.py. Each seed in --seeds trains one model: the dev set
is scored after every epoch, the best checkpoint (by the task metric) is kept
in <model_dir>/seed_<seed>/best, and its predictions on the dev (and test)
files are written beside it. <model_dir>/results.json holds the per-seed
scores with their median, mean and standard deviation.
"""

import collections
import dataclasses
import functools
import json
import math
import os
import statistics
import time
import weakref
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import electra_tf  # noqa: F401  (selects the Keras backend before keras loads)
from electra_tf.convert.load import copy_encoder_weights, find_checkpoint, load_encoder
from electra_tf.convert.report import ConversionError
from electra_tf.data import tokenization
from electra_tf.finetuning import conll, glue, metrics, squad
from electra_tf.finetuning.models import (
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
    EncoderMismatchError,
    check_vocab_size,
)
from electra_tf.model.encoder import CONFIG_FILE
from electra_tf.training import distribute
from electra_tf.training.optimization import (
    AdamWeightDecay,
    layerwise_lr_multipliers,
    learning_rate_at,
)
from electra_tf.training.trainer import NonFiniteLossError, Trainer, accumulation_batches

FLAGS = flags.FLAGS

TAGGING_TASKS = {
    # name: (metric, description)
    "ner": "entity_f1",
    "chunk": "entity_f1",
    "pos": "token_accuracy",
    "tagging": None,
}
_TASK_ALIASES = {
    "conll2003": "ner",
    "wikiann": "ner",
    "conll2000": "chunk",
    "upos": "pos",
    "sst": "sst-2",
    "sts": "sts-b",
    "squad1": "squad",
    "squad2": "squadv2",
    "squad_v2": "squadv2",
    "squad-v2": "squadv2",
}
_CUSTOM = ("classification", "regression")
_QA = ("squad", "squadv2")

# Data.
flags.DEFINE_string(
    "task_name",
    None,
    "ner (wikiann / conll2003), chunk, pos, a GLUE task (cola, sst-2, mrpc, "
    "sts-b, qqp, mnli, qnli, rte, wnli), squad, squadv2, or tagging / "
    "classification / regression for your own files.",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Folder of the task's train/dev/test files (GLUE: the GLUE root or the task folder).",
)
flags.DEFINE_string("train_file", None, "Training file (overrides --data_dir).")
flags.DEFINE_string("dev_file", None, "Dev file, scored after each epoch (overrides --data_dir).")
flags.DEFINE_string("test_file", None, "Test file to predict with the best checkpoint.")
flags.DEFINE_integer("word_column", 0, "Tagging: column of the words (CoNLL-U: FORM).")
flags.DEFINE_integer("label_column", -1, "Tagging: column of the labels (CoNLL-U: UPOS).")
flags.DEFINE_enum(
    "label_encoding",
    "BIOES",
    ["BIOES", "none"],
    "Tagging: train span labels (B-/I- tags) as BIOES, as the original does; "
    "predictions are written and scored as IOB2.",
)
# Model.
flags.DEFINE_string(
    "init_checkpoint",
    None,
    "Pre-trained discriminator: our directory "
    "(<pretraining model_dir>/discriminator: config.json + encoder.ckpt), a "
    "Hugging Face ELECTRA directory, a google-research/electra checkpoint or a "
    "tf-models-official checkpoint (the format is detected).",
)
flags.DEFINE_string(
    "vocab_file", None, "WordPiece vocabulary (default: vocab.txt beside the discriminator)."
)
flags.DEFINE_bool(
    "do_lower_case",
    True,
    "Lower-case the text (must match pre-training; default: "
    "an HF checkpoint's tokenizer_config.json when it says, else true).",
)
flags.DEFINE_string("model_dir", None, "Checkpoints, predictions and results.json.")
flags.DEFINE_integer(
    "max_seq_length",
    128,
    "Wordpieces per input (longer sentences are split "
    "into windows for tagging, truncated for GLUE, strided for SQuAD).",
)
# Optimization.
flags.DEFINE_float(
    "learning_rate", 1e-4, "Peak learning rate (paper: small 3e-4, base 1e-4, large 5e-5)."
)
flags.DEFINE_float("layerwise_lr_decay", 0.8, "Layer-wise LR decay (large: 0.9); 0 turns it off.")
flags.DEFINE_bool(
    "layerwise_lr_decay_original_off_by_one",
    False,
    "Reproduce the original code's depths (top layer gets decay^2, not decay^1).",
)
flags.DEFINE_float("num_train_epochs", 3.0, "Passes over the training data.")
flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the steps with linear warmup.")
flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay.")
flags.DEFINE_integer("train_batch_size", 32, "Global batch per optimizer step.")
flags.DEFINE_integer("eval_batch_size", 32, "Batch for dev/test prediction.")
flags.DEFINE_integer("gradient_accumulation_steps", 1, "Micro-batches per optimizer step.")
flags.DEFINE_list("seeds", ["0"], "Comma-separated seeds; one model is trained per seed.")
flags.DEFINE_integer("max_train_steps", None, "Stop after this many steps (for quick tests).")
flags.DEFINE_integer("iterations_per_loop", 1000, "Steps per host call; also the log period.")
# SQuAD.
flags.DEFINE_integer("max_query_length", 64, "SQuAD: question wordpieces kept.")
flags.DEFINE_integer("doc_stride", 128, "SQuAD: stride between document windows.")
flags.DEFINE_integer("n_best_size", 20, "SQuAD: candidates per question.")
flags.DEFINE_integer("max_answer_length", 30, "SQuAD: longest answer in wordpieces.")
distribute.define_flags()
flags.adopt_module_key_flags(distribute)

RESULTS_FILE = "results.json"
INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")


class InputError(ValueError):
    """Bad user input found after flag parsing (data, checkpoint, vocabulary)."""


def _require(condition, flag, message):
    if not condition:
        raise app.UsageError(f"--{flag}: {message}")


def canonical_task_name(name: str) -> str:
    key = name.lower()
    key = _TASK_ALIASES.get(key, key)
    if key in TAGGING_TASKS or key in _CUSTOM or key in _QA:
        return key
    try:
        return glue.get_task(key).name
    except KeyError:
        raise app.UsageError(
            f"--task_name: unknown task {name!r}; choose one of "
            f"{sorted(TAGGING_TASKS) + sorted(glue.TASKS) + list(_CUSTOM) + list(_QA)} "
            f"(aliases: {sorted(_TASK_ALIASES)})"
        ) from None


def parse_seeds(values) -> list[int]:
    try:
        seeds = [int(v) for v in values]
    except ValueError:
        raise app.UsageError(f"--seeds: expected comma-separated integers, got {values}") from None
    _require(seeds, "seeds", "needs at least one seed")
    _require(len(set(seeds)) == len(seeds), "seeds", f"has duplicates: {seeds}")
    return seeds


def validate_flags():
    """Fails before any work with a message naming the offending flag."""
    for name in ("task_name", "init_checkpoint", "model_dir"):
        _require(FLAGS[name].value, name, "is required")
    task = canonical_task_name(FLAGS.task_name)
    if not FLAGS.data_dir:
        for name in ("train_file", "dev_file"):
            _require(FLAGS[name].value, name, "is required when --data_dir is not given")
    for name in ("data_dir", "train_file", "dev_file", "test_file"):
        value = FLAGS[name].value
        if value:
            check = tf.io.gfile.isdir if name == "data_dir" else tf.io.gfile.exists
            _require(check(value), name, f"{value} does not exist")
    try:
        source = find_checkpoint(FLAGS.init_checkpoint)
    except ConversionError as e:
        raise app.UsageError(f"--init_checkpoint: {e}") from None
    if FLAGS.vocab_file:
        _require(
            tf.io.gfile.exists(FLAGS.vocab_file), "vocab_file", f"{FLAGS.vocab_file} does not exist"
        )
    else:
        _require(
            source.vocab_file,
            "vocab_file",
            f"is required: {source.checkpoint} has no vocab.txt beside it",
        )
    _require(FLAGS.max_seq_length >= 3, "max_seq_length", "must leave room for [CLS] and [SEP]")
    _require(FLAGS.learning_rate > 0, "learning_rate", "must be positive")
    _require(
        0.0 <= FLAGS.layerwise_lr_decay <= 1.0,
        "layerwise_lr_decay",
        "must be in [0, 1] (0 turns it off)",
    )
    _require(FLAGS.num_train_epochs > 0, "num_train_epochs", "must be positive")
    _require(0.0 <= FLAGS.warmup_proportion <= 1.0, "warmup_proportion", "must be in [0, 1]")
    _require(FLAGS.weight_decay_rate >= 0, "weight_decay_rate", "must be >= 0")
    for name in (
        "train_batch_size",
        "eval_batch_size",
        "gradient_accumulation_steps",
        "iterations_per_loop",
        "n_best_size",
        "max_answer_length",
        "doc_stride",
        "max_query_length",
    ):
        _require(FLAGS[name].value > 0, name, "must be positive")
    if FLAGS.max_train_steps is not None:
        _require(FLAGS.max_train_steps > 0, "max_train_steps", "must be positive")
    if task in _QA:
        _require(
            FLAGS.max_query_length + 3 < FLAGS.max_seq_length,
            "max_query_length",
            f"must leave room for the document in --max_seq_length={FLAGS.max_seq_length}",
        )
    parse_seeds(FLAGS.seeds)
    return task


# ---------------------------------------------------------------------------
# Tasks: data, model, scoring and prediction files
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class EvalSet:
    """One file to predict: model inputs plus how to score and write predictions."""

    name: str
    path: str
    arrays: dict[str, np.ndarray]
    score: Callable | None  # outputs -> dict of metrics (None: unlabelled)
    write: Callable  # (outputs, path) -> None
    suffix: str


@dataclasses.dataclass
class TaskData:
    name: str
    metric: str  # key of the main score in the metric dicts
    make_model: Callable  # config -> keras model
    train: dict[str, np.ndarray]
    dev: EvalSet
    test: EvalSet | None
    baseline: float | None = None  # majority-class score on dev
    labels: list[str] | None = None  # label names in id order (None: regression / QA)


def _find_split(data_dir, split):
    if not data_dir:
        return None
    patterns = [
        f"{split}.conll",
        f"{split}.txt",
        f"{split}.tsv",
        f"{split}.conllu",
        f"{split}.conllu.gz",
        f"{split}.conll.gz",
        f"{split}.txt.gz",
        f"*-{split}.conllu",
        f"*-{split}.conllu.gz",
        f"*{split}*.conll*",
    ]
    for pattern in patterns:
        found = sorted(tf.io.gfile.glob(os.path.join(data_dir, pattern)))
        if found:
            return found[0]
    return None


def _tagging_files():
    train = FLAGS.train_file or _find_split(FLAGS.data_dir, "train")
    dev = FLAGS.dev_file or _find_split(FLAGS.data_dir, "dev")
    test = FLAGS.test_file or (None if FLAGS.dev_file else _find_split(FLAGS.data_dir, "test"))
    if train is None:
        raise app.UsageError(
            f"--data_dir: no train file (train.conll, train.txt, "
            f"*-train.conllu[.gz], ...) in {FLAGS.data_dir}; pass --train_file"
        )
    if dev is None:
        if test is None:
            raise app.UsageError(
                f"--data_dir: no dev or test file in {FLAGS.data_dir}; pass --dev_file"
            )
        logging.warning(
            "No dev file in %s: using the test file %s for model selection "
            "(as for CoNLL-2000, which has no dev split).",
            FLAGS.data_dir,
            test,
        )
        dev, test = test, None
    return train, dev, test


def _tagging_task(task, tokenizer) -> TaskData:
    train_path, dev_path, test_path = _tagging_files()
    read = functools.partial(
        conll.read_conll, word_column=FLAGS.word_column, label_column=FLAGS.label_column
    )
    train_sentences = read(train_path)
    original_labels = conll.LabelMap.from_sentences(train_sentences)
    scheme = original_labels.scheme
    metric = TAGGING_TASKS[task] or ("entity_f1" if scheme else "token_accuracy")
    if metric == "entity_f1" and not scheme:
        raise InputError(
            f"{train_path}: task {task} scores entity spans but the labels "
            f"{list(original_labels)[:10]} are not B-/I- (IOB/BIOES) tags"
        )
    to_bioes = bool(scheme) and FLAGS.label_encoding == "BIOES"

    def encode_labels(sentences):
        if not to_bioes:
            return sentences
        return [
            dataclasses.replace(s, labels=tuple(conll.iob_to_bioes(s.labels))) for s in sentences
        ]

    # The majority-class baseline predicts the most frequent training tag for every word.
    most_common = collections.Counter(
        label for s in train_sentences for label in s.labels
    ).most_common(1)[0][0]
    train_sentences = encode_labels(train_sentences)
    label_map = conll.LabelMap.from_sentences(train_sentences)
    if to_bioes:
        # Every BIOES tag of the training types, so dev spans never need an unseen tag.
        types = sorted({label[2:] for label in label_map.labels if label != "O"})
        label_map = conll.LabelMap(["O"] + [f"{p}-{t}" for t in types for p in "BIES"])
    logging.info(
        "%s: %d sentences, %d labels %s",
        train_path,
        len(train_sentences),
        len(label_map),
        list(label_map)[:20],
    )
    train = conll.features_to_arrays(
        conll.encode_sentences(train_sentences, tokenizer, label_map, FLAGS.max_seq_length),
        FLAGS.max_seq_length,
    )

    def score_words(gold, predicted):
        if metric == "entity_f1":
            scores = metrics.entity_scores(gold, predicted)
            return {
                "entity_f1": scores.f1,
                "precision": scores.precision,
                "recall": scores.recall,
                "token_accuracy": metrics.token_accuracy(gold, predicted),
            }
        return {"token_accuracy": metrics.token_accuracy(gold, predicted)}

    # With BIOES every prefix of a training type is a label, so an evaluation span may use a
    # tag the training file lacks (CoNLL-2000's test set has I-LST, its training set only B-LST).
    eval_labels = set(original_labels) | (set(label_map.labels) if to_bioes else set())

    def eval_set(name, path):
        sentences = read(path, labels=eval_labels)
        features = conll.encode_sentences(sentences, tokenizer, label_map, FLAGS.max_seq_length)
        arrays = conll.features_to_arrays(features, FLAGS.max_seq_length)
        gold = [list(s.labels) for s in sentences]

        def words(logits):
            predicted = conll.words_predictions(features, logits.argmax(-1), label_map)
            return [conll.bioes_to_iob2(p) for p in predicted] if to_bioes else predicted

        def write(logits, out_path):
            with tf.io.gfile.GFile(out_path, "w") as f:
                for sentence, tags in zip(sentences, words(logits)):
                    f.write("".join(f"{w}\t{t}\n" for w, t in zip(sentence.words, tags)) + "\n")

        return EvalSet(
            name, path, arrays, lambda logits: score_words(gold, words(logits)), write, "conll"
        ), gold

    dev, dev_gold = eval_set("dev", dev_path)
    test = eval_set("test", test_path)[0] if test_path else None
    baseline = score_words(dev_gold, [[most_common] * len(g) for g in dev_gold])[metric]
    return TaskData(
        task,
        metric,
        lambda config: ElectraForTokenClassification(config, len(label_map)),
        train,
        dev,
        test,
        baseline,
        labels=list(label_map.labels),
    )


def _sentence_task(task, tokenizer) -> TaskData:
    if task in _CUSTOM:
        is_regression = task == "regression"
        if not FLAGS.train_file or not FLAGS.dev_file:
            raise app.UsageError(
                f"--train_file and --dev_file are required for --task_name={task}"
                " (CSV/TSV with a header, or JSONL: text[_a], text_b, label)"
            )
        train_examples = glue.read_examples_file(FLAGS.train_file, is_regression=is_regression)
        labels = (
            None
            if is_regression
            else sorted({e.label for e in train_examples if e.label is not None})
        )
        metric_kind = "pearson_spearman" if is_regression else "accuracy"

        def read(split, path):
            return glue.read_examples_file(path, labels=labels, is_regression=is_regression)

        paths = {"train": FLAGS.train_file, "dev": FLAGS.dev_file, "test": FLAGS.test_file}
    else:
        spec = glue.get_task(task)
        is_regression, labels, metric_kind = spec.is_regression, spec.labels, spec.metric
        dev_split = "dev_matched" if "dev_matched" in spec.splits else "dev"
        test_split = "test_matched" if "test_matched" in spec.splits else "test"

        def read(split, path):
            if path:
                return glue.read_examples_file(path, labels=labels, is_regression=is_regression)
            return glue.read_glue(
                spec,
                FLAGS.data_dir,
                {"dev": dev_split, "test": test_split, "train": "train"}[split],
            )

        paths = {"train": FLAGS.train_file, "dev": FLAGS.dev_file, "test": FLAGS.test_file}
        train_examples = read("train", paths["train"])
    if not train_examples:
        raise InputError(f"no training examples in {paths['train'] or FLAGS.data_dir}")
    encode = functools.partial(
        glue.encode_pairs,
        tokenizer=tokenizer,
        max_seq_length=FLAGS.max_seq_length,
        labels=labels,
        is_regression=is_regression,
    )
    train = encode(train_examples)
    unlabelled = np.isnan(train["label_ids"]) if is_regression else train["label_ids"] < 0
    if unlabelled.any():
        raise InputError(
            f"{paths['train'] or FLAGS.data_dir}: {int(unlabelled.sum())} training "
            "example(s) have no label"
        )
    metric = {"mcc": "mcc", "f1": "f1", "accuracy": "accuracy", "pearson_spearman": "corr"}[
        metric_kind
    ]

    def predictions(outputs):
        return outputs if is_regression else outputs.argmax(-1)

    def eval_set(name, path):
        try:
            examples = read(name, path)
        except FileNotFoundError:
            if name == "test":
                return None
            raise
        arrays = encode(examples)
        gold = arrays["label_ids"]
        has_labels = not (np.isnan(gold).any() if is_regression else (gold < 0).any())

        def write(outputs, out_path):
            with tf.io.gfile.GFile(out_path, "w") as f:
                f.write("index\tprediction\n")
                for i, p in enumerate(predictions(outputs)):
                    f.write(f"{i}\t{float(p):.6f}\n" if is_regression else f"{i}\t{labels[p]}\n")

        score = (
            (lambda outputs: metrics.glue_metrics(metric_kind, gold, predictions(outputs)))
            if has_labels
            else None
        )
        return EvalSet(name, path or FLAGS.data_dir, arrays, score, write, "tsv")

    dev = eval_set("dev", paths["dev"])
    if dev.score is None:
        raise InputError(f"{dev.path}: the dev set must be labelled to select the best checkpoint")
    test = eval_set("test", paths["test"]) if (paths["test"] or task not in _CUSTOM) else None
    baseline = None
    if not is_regression:
        majority = np.bincount(train["label_ids"], minlength=len(labels)).argmax()
        baseline = metrics.glue_metrics(
            metric_kind, dev.arrays["label_ids"], np.full_like(dev.arrays["label_ids"], majority)
        )[metric]
    num_labels = 1 if is_regression else len(labels)
    return TaskData(
        task,
        metric,
        lambda config: ElectraForSequenceClassification(
            config, num_labels, is_regression=is_regression
        ),
        train,
        dev,
        test,
        baseline,
        labels=None if is_regression else list(labels),
    )


def _squad_arrays(features, is_training):
    n, length = len(features), FLAGS.max_seq_length
    arrays = {k: np.zeros((n, length), np.int32) for k in INPUT_KEYS}
    for i, f in enumerate(features):
        arrays["input_ids"][i, : len(f.input_ids)] = f.input_ids
        arrays["input_mask"][i, : len(f.input_ids)] = 1
        arrays["segment_ids"][i, : len(f.segment_ids)] = f.segment_ids
    if is_training:
        arrays["start_positions"] = np.array([f.start_position for f in features], np.int32)
        arrays["end_positions"] = np.array([f.end_position for f in features], np.int32)
        arrays["is_impossible"] = np.array([f.is_impossible for f in features], np.int32)
    return arrays


def _squad_task(task, tokenizer) -> TaskData:
    version_2 = task == "squadv2"
    suffix = "v2.0" if version_2 else "v1.1"
    train_path = FLAGS.train_file or os.path.join(FLAGS.data_dir, f"train-{suffix}.json")
    dev_path = FLAGS.dev_file or os.path.join(FLAGS.data_dir, f"dev-{suffix}.json")
    for flag, path in (("train_file", train_path), ("dev_file", dev_path)):
        if not tf.io.gfile.exists(path):
            raise app.UsageError(f"--{flag}: {path} does not exist")
    build = functools.partial(
        squad.build_squad_features,
        tokenizer=tokenizer,
        max_seq_length=FLAGS.max_seq_length,
        doc_stride=FLAGS.doc_stride,
        max_query_length=FLAGS.max_query_length,
    )
    train_examples, _ = _read_squad(train_path, True)
    train = _squad_arrays(build(train_examples, is_training=True), True)
    dev_examples, dev_data = _read_squad(dev_path, False)
    dev_features = build(dev_examples, is_training=False)

    def answers(outputs):
        return squad.postprocess(
            dev_examples,
            dev_features,
            outputs["start_logits"],
            outputs["end_logits"],
            tokenizer,
            FLAGS.n_best_size,
            FLAGS.max_answer_length,
            version_2_with_negative=version_2,
        )

    def score(outputs):
        predictions, diffs, _ = answers(outputs)
        if version_2:
            out = metrics.squad_v2_scores(dev_data, predictions)
            return {"f1": out["f1"], "exact_match": out["exact"]}
        return metrics.squad_v1_scores(dev_data, predictions)

    def write(outputs, out_path):
        predictions, diffs, _ = answers(outputs)
        with tf.io.gfile.GFile(out_path, "w") as f:
            json.dump(predictions, f, indent=1, ensure_ascii=False)

    dev = EvalSet("dev", dev_path, _squad_arrays(dev_features, False), score, write, "json")
    return TaskData(
        task, "f1", lambda config: ElectraForQuestionAnswering(config, version_2), train, dev, None
    )


def _read_squad(path, is_training):
    try:
        return squad.read_squad(path, is_training)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a SQuAD JSON file ({type(e).__name__}: {e})") from None


def load_task(task, tokenizer) -> TaskData:
    if task in TAGGING_TASKS:
        return _tagging_task(task, tokenizer)
    if task in _QA:
        return _squad_task(task, tokenizer)
    return _sentence_task(task, tokenizer)


# ---------------------------------------------------------------------------
# Training and prediction
# ---------------------------------------------------------------------------


_PREDICT_FNS = weakref.WeakKeyDictionary()


def predict(model, arrays, batch_size, jit_compile):
    """Model outputs for every row, in order (numpy; dict for QA)."""
    call = _PREDICT_FNS.get(model)
    if call is None:  # one traced (and compiled) function per model, reused every epoch
        call = tf.function(
            lambda features: model(features, training=False), jit_compile=jit_compile
        )
        _PREDICT_FNS[model] = call
    n = len(arrays["input_ids"])
    chunks = []
    for start in range(0, n, batch_size):
        batch = {k: arrays[k][start : start + batch_size] for k in INPUT_KEYS}
        rows = len(batch["input_ids"])
        if rows < batch_size:  # pad to one shape: a single compilation
            batch = {
                k: np.concatenate([v, np.zeros((batch_size - rows,) + v.shape[1:], v.dtype)])
                for k, v in batch.items()
            }
        out = call({k: tf.constant(v) for k, v in batch.items()})
        chunks.append(tf.nest.map_structure(lambda t, rows=rows: t.numpy()[:rows], out))
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *chunks)


def _train_dataset(arrays, micro_batch, accumulation, seed):
    def dataset_fn(input_context):
        dataset = tf.data.Dataset.from_tensor_slices(arrays)
        if input_context.num_input_pipelines > 1:
            dataset = dataset.shard(
                input_context.num_input_pipelines, input_context.input_pipeline_id
            )
        dataset = dataset.shuffle(
            len(arrays["input_ids"]), seed=seed, reshuffle_each_iteration=True
        ).repeat()
        dataset = dataset.batch(micro_batch, drop_remainder=True)
        return accumulation_batches(dataset, accumulation).prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def train_steps_for(num_examples):
    """(total optimizer steps, the steps after which the dev set is scored: each epoch's end)."""
    exact = FLAGS.num_train_epochs * num_examples / FLAGS.train_batch_size
    total = max(1, int(exact))
    if FLAGS.max_train_steps is not None:
        total = min(total, FLAGS.max_train_steps)
    per_epoch = exact / FLAGS.num_train_epochs
    points = {
        min(total, max(1, int(round(k * per_epoch))))
        for k in range(1, math.ceil(FLAGS.num_train_epochs) + 1)
    }
    return total, sorted(points | {total})


def run_seed(seed, data: TaskData, pretrained_encoder, strategy, micro_batch) -> dict:
    config = pretrained_encoder.config
    seed_dir = os.path.join(FLAGS.model_dir, f"seed_{seed}")
    tf.io.gfile.makedirs(seed_dir)
    keras.utils.set_random_seed(seed)
    num_examples = len(data.train["input_ids"])
    num_train_steps, eval_points = train_steps_for(num_examples)
    with strategy.scope():
        model = data.make_model(config)
        model.build()
        copy_encoder_weights(pretrained_encoder, model.encoder)
        variables = model.trainable_variables
        multipliers = None
        if FLAGS.layerwise_lr_decay > 0:
            multipliers = layerwise_lr_multipliers(
                [v.path for v in variables],
                config.num_hidden_layers,
                FLAGS.layerwise_lr_decay,
                original_off_by_one=FLAGS.layerwise_lr_decay_original_off_by_one,
            )
        schedule = functools.partial(
            learning_rate_at,
            base_learning_rate=FLAGS.learning_rate,
            num_train_steps=num_train_steps,
            num_warmup_steps=int(FLAGS.warmup_proportion * num_train_steps),
        )
        optimizer = AdamWeightDecay(
            variables,
            schedule,
            weight_decay_rate=FLAGS.weight_decay_rate,
            lr_multipliers=multipliers,
        )
        trainer = Trainer(
            strategy,
            model,
            optimizer,
            seed=seed,
            jit_compile=distribute.use_xla(FLAGS.use_xla, strategy),
        )
    iterator = iter(
        strategy.distribute_datasets_from_function(
            _train_dataset(data.train, micro_batch, FLAGS.gradient_accumulation_steps, seed)
        )
    )
    best_prefix = os.path.join(seed_dir, "best", "model")
    model_checkpoint = tf.train.Checkpoint(model=model)
    chief = distribute.is_chief(strategy)
    writer = tf.summary.create_file_writer(seed_dir) if chief else tf.summary.create_noop_writer()
    logging.info(
        "Seed %d: %d training inputs, %d steps, dev scored at steps %s, global batch %d.",
        seed,
        num_examples,
        num_train_steps,
        eval_points,
        FLAGS.train_batch_size,
    )
    best, history = None, []
    start = time.time()
    while trainer.step < num_train_steps:
        next_eval = min(p for p in eval_points if p > trainer.step)
        while trainer.step < next_eval:
            steps = min(FLAGS.iterations_per_loop, next_eval - trainer.step)
            try:
                sums = trainer.train(iterator, steps)
            except NonFiniteLossError as e:
                raise SystemExit(f"run_finetuning: stopped: {e}") from None
            logging.info(
                "seed %d step %d/%d | loss %.4f | grad_norm %.3f | lr %.2e",
                seed,
                trainer.step,
                num_train_steps,
                sums["loss"] / steps,
                sums["grad_norm"] / steps,
                float(optimizer.learning_rate),
            )
            with writer.as_default(step=trainer.step):
                tf.summary.scalar("loss", sums["loss"] / steps)
        scores = data.dev.score(
            predict(model, data.dev.arrays, FLAGS.eval_batch_size, trainer.jit_compile)
        )
        score = float(scores[data.metric])
        history.append({"step": trainer.step, **{k: float(v) for k, v in scores.items()}})
        logging.info(
            "seed %d step %d dev %s %.4f (%s)",
            seed,
            trainer.step,
            data.metric,
            score,
            ", ".join(f"{k} {v:.4f}" for k, v in scores.items()),
        )
        with writer.as_default(step=trainer.step):
            tf.summary.scalar(f"dev_{data.metric}", score)
        if best is None or score > best["score"] or math.isnan(best["score"]):
            best = {"score": score, "step": trainer.step, "dev": scores}
            if chief:
                model_checkpoint.write(best_prefix)
    writer.flush()
    wall = time.time() - start
    model_checkpoint.read(best_prefix).assert_existing_objects_matched()
    result = {
        "seed": seed,
        "score": best["score"],
        "best_step": best["step"],
        "dev": {k: float(v) for k, v in best["dev"].items()},
        "history": history,
        "steps": trainer.step,
        "train_wall_time_seconds": wall,
    }
    for eval_set in (data.dev, data.test):
        if eval_set is None:
            continue
        outputs = predict(model, eval_set.arrays, FLAGS.eval_batch_size, trainer.jit_compile)
        path = os.path.join(seed_dir, f"{eval_set.name}_predictions.{eval_set.suffix}")
        if chief:
            eval_set.write(outputs, path)
        result[f"{eval_set.name}_predictions"] = path
        if eval_set.name == "test" and eval_set.score is not None:
            result["test"] = {k: float(v) for k, v in eval_set.score(outputs).items()}
    return result


def summarize(task, metric, per_seed, baseline, wall_time) -> dict:
    scores = [r["score"] for r in per_seed]
    return {
        "task": task,
        "metric": metric,
        "scores": {str(r["seed"]): r["score"] for r in per_seed},
        "median": float(statistics.median(scores)),
        "mean": float(statistics.fmean(scores)),
        "std": float(statistics.pstdev(scores)) if len(scores) > 1 else 0.0,
        "majority_baseline": baseline,
        "steps": per_seed[0]["steps"],
        "wall_time_seconds": wall_time,
        "per_seed": per_seed,
    }


def write_export_metadata(task, data, config):
    """What electra_tf.export_saved_model needs beside the checkpoints of this run."""
    config.save(os.path.join(FLAGS.model_dir, CONFIG_FILE))
    tf.io.gfile.copy(FLAGS.vocab_file, os.path.join(FLAGS.model_dir, "vocab.txt"), overwrite=True)
    if data.labels is not None:
        with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "label_map.json"), "w") as f:
            f.write(json.dumps({"labels": data.labels}, indent=1, ensure_ascii=False) + "\n")
    settings = {
        name: FLAGS[name].value
        for name in (
            "max_seq_length",
            "do_lower_case",
            "label_encoding",
            "doc_stride",
            "max_query_length",
            "max_answer_length",
        )
    }
    with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "finetuning_settings.json"), "w") as f:
        f.write(json.dumps({"task_name": task, **settings}, indent=1) + "\n")


def main(argv):
    del argv
    run_start = time.time()
    task = validate_flags()
    seeds = parse_seeds(FLAGS.seeds)
    # First TF work of the process: multi-worker collectives must be configured
    # before anything initializes the runtime.
    try:
        strategy = distribute.create_strategy(
            FLAGS.distribution_strategy, FLAGS.tpu, FLAGS.num_gpus
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    try:
        pretrained = load_encoder(FLAGS.init_checkpoint)
        logging.info(
            "Fine-tuning from %s (%s format).", pretrained.source.checkpoint, pretrained.format
        )
        vocab_file = FLAGS.vocab_file = FLAGS.vocab_file or pretrained.vocab_file
        if pretrained.do_lower_case is not None and not FLAGS["do_lower_case"].present:
            FLAGS.do_lower_case = pretrained.do_lower_case
        elif pretrained.do_lower_case not in (None, FLAGS.do_lower_case):
            logging.warning(
                "--do_lower_case=%s but %s says %s.",
                FLAGS.do_lower_case,
                FLAGS.init_checkpoint,
                pretrained.do_lower_case,
            )
        config = pretrained.config
        check_vocab_size(config.vocab_size, vocab_file, FLAGS.init_checkpoint)
        tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=FLAGS.do_lower_case)
        _require(
            FLAGS.max_seq_length <= config.max_position_embeddings,
            "max_seq_length",
            f"{FLAGS.max_seq_length} exceeds the model's max_position_embeddings "
            f"({config.max_position_embeddings})",
        )
        data = load_task(task, tokenizer)
    except (
        InputError,
        EncoderMismatchError,
        conll.ConllFormatError,
        glue.DataFormatError,
        FileNotFoundError,
        UnicodeDecodeError,
    ) as e:
        raise SystemExit(f"run_finetuning: error: {e}") from None
    except ValueError as e:  # e.g. a vocabulary that does not parse; ConversionError
        raise SystemExit(f"run_finetuning: error: {e}") from None

    if FLAGS.mixed_precision != "none":
        keras.mixed_precision.set_dtype_policy(f"mixed_{FLAGS.mixed_precision}")
    logging.info("%s", distribute.cpu_bf16_advice(FLAGS.mixed_precision))
    try:
        micro_batch = distribute.per_replica_batch_size(
            FLAGS.train_batch_size, strategy.num_replicas_in_sync, FLAGS.gradient_accumulation_steps
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    tf.io.gfile.makedirs(FLAGS.model_dir)
    if distribute.is_chief(strategy):
        write_export_metadata(task, data, config)
    logging.info(
        "Task %s: %d training inputs, dev %s, metric %s (majority baseline %s).",
        task,
        len(data.train["input_ids"]),
        data.dev.path,
        data.metric,
        data.baseline,
    )
    per_seed = []
    for seed in seeds:
        per_seed.append(run_seed(seed, data, pretrained.encoder, strategy, micro_batch))
        logging.info(
            "seed %d: best dev %s %.4f at step %d",
            seed,
            data.metric,
            per_seed[-1]["score"],
            per_seed[-1]["best_step"],
        )
    results = summarize(task, data.metric, per_seed, data.baseline, time.time() - run_start)
    if distribute.is_chief(strategy):
        with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, RESULTS_FILE), "w") as f:
            f.write(json.dumps(results, indent=2) + "\n")
    logging.info(
        "%s %s over %d seed(s): median %.4f, mean %.4f, std %.4f -> %s",
        task,
        data.metric,
        len(seeds),
        results["median"],
        results["mean"],
        results["std"],
        os.path.join(FLAGS.model_dir, RESULTS_FILE),
    )


if __name__ == "__main__":
    app.run(main)
