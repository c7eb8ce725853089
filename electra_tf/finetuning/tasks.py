"""Fine-tuning tasks: their data as arrays, the model to build, scoring and prediction files.

load_task(settings, tokenizer) reads a tagging (CoNLL / CoNLL-U), sentence(-pair)
(GLUE or your own CSV / TSV / JSONL) or SQuAD task as a FinetuningSettings names it.
"""

import collections
import dataclasses
import functools
import json
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import files
from electra_tf.finetuning import conll, glue, metrics, squad
from electra_tf.finetuning.models import (
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
)
from electra_tf.finetuning.settings import (
    CUSTOM_TASKS,
    QA_TASKS,
    TAGGING_TASKS,
    FinetuningSettings,
    SettingsError,
)

INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")


class InputError(ValueError):
    """Bad user input found in the data (a file's content, a missing label)."""


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


def load_task(settings: FinetuningSettings, tokenizer) -> TaskData:
    """The task settings.task_name names, read from its files and encoded with `tokenizer`."""
    if settings.task_name in TAGGING_TASKS:
        return _tagging_task(settings, tokenizer)
    if settings.task_name in QA_TASKS:
        return _squad_task(settings, tokenizer)
    return _sentence_task(settings, tokenizer)


# ---------------------------------------------------------------------------
# Tagging
# ---------------------------------------------------------------------------


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


def tagging_files(settings: FinetuningSettings):
    """(train, dev, test) paths: the file settings or the splits found in data_dir."""
    data_dir = settings.data_dir
    train = settings.train_file or _find_split(data_dir, "train")
    dev = settings.dev_file or _find_split(data_dir, "dev")
    test = settings.test_file or (None if settings.dev_file else _find_split(data_dir, "test"))
    if train is None:
        raise SettingsError(
            f"--data_dir: no train file (train.conll, train.txt, "
            f"*-train.conllu[.gz], ...) in {data_dir}; pass --train_file"
        )
    if dev is None:
        if test is None:
            raise SettingsError(f"--data_dir: no dev or test file in {data_dir}; pass --dev_file")
        logging.warning(
            "No dev file in %s: using the test file %s for model selection "
            "(as for CoNLL-2000, which has no dev split).",
            data_dir,
            test,
        )
        dev, test = test, None
    return train, dev, test


@dataclasses.dataclass
class _TaggingScheme:
    """How one tagging task's labels are trained, scored and written back."""

    label_map: conll.LabelMap
    metric: str
    to_bioes: bool
    eval_labels: set  # labels an evaluation file may hold

    def encode_labels(self, sentences):
        if not self.to_bioes:
            return sentences
        return [
            dataclasses.replace(s, labels=tuple(conll.iob_to_bioes(s.labels))) for s in sentences
        ]

    def words(self, features, logits):
        predicted = conll.words_predictions(features, logits.argmax(-1), self.label_map)
        return [conll.bioes_to_iob2(p) for p in predicted] if self.to_bioes else predicted

    def score_words(self, gold, predicted):
        if self.metric == "entity_f1":
            scores = metrics.entity_scores(gold, predicted)
            return {
                "entity_f1": scores.f1,
                "precision": scores.precision,
                "recall": scores.recall,
                "token_accuracy": metrics.token_accuracy(gold, predicted),
            }
        return {"token_accuracy": metrics.token_accuracy(gold, predicted)}


def _tagging_scheme(task, train_sentences, label_encoding, train_path) -> _TaggingScheme:
    original_labels = conll.LabelMap.from_sentences(train_sentences)
    scheme = original_labels.scheme
    metric = TAGGING_TASKS[task] or ("entity_f1" if scheme else "token_accuracy")
    if metric == "entity_f1" and not scheme:
        raise InputError(
            f"{train_path}: task {task} scores entity spans but the labels "
            f"{list(original_labels)[:10]} are not B-/I- (IOB/BIOES) tags"
        )
    to_bioes = bool(scheme) and label_encoding == "BIOES"
    if scheme:
        # Every tag of the training chunk types under the trained scheme, so an evaluation span
        # may use a tag the training file lacks (CoNLL-2000's test set has I-LST, its training
        # set only B-LST), with raw tags (--label_encoding=none) as with BIOES.
        types = sorted({label[2:] for label in original_labels.labels if label != "O"})
        prefixes = "BIES" if to_bioes or scheme == "BIOES" else "BI"
        label_map = conll.LabelMap(["O"] + [f"{p}-{t}" for t in types for p in prefixes])
    else:
        label_map = original_labels
    eval_labels = set(original_labels) | set(label_map.labels)
    return _TaggingScheme(label_map, metric, to_bioes, eval_labels)


def _tagging_eval_set(name, path, read, scheme, tokenizer, max_seq_length):
    sentences = read(path, labels=scheme.eval_labels)
    features = conll.encode_sentences(sentences, tokenizer, scheme.label_map, max_seq_length)
    arrays = conll.features_to_arrays(features, max_seq_length)
    gold = [list(s.labels) for s in sentences]

    def write(logits, out_path):
        files.write_text(
            out_path,
            "".join(
                "".join(f"{w}\t{t}\n" for w, t in zip(sentence.words, tags)) + "\n"
                for sentence, tags in zip(sentences, scheme.words(features, logits))
            ),
        )

    def score(logits):
        return scheme.score_words(gold, scheme.words(features, logits))

    return EvalSet(name, path, arrays, score, write, "conll"), gold


def _tagging_task(settings: FinetuningSettings, tokenizer) -> TaskData:
    task, max_seq_length = settings.task_name, settings.max_seq_length
    train_path, dev_path, test_path = tagging_files(settings)
    read = functools.partial(
        conll.read_conll, word_column=settings.word_column, label_column=settings.label_column
    )
    train_sentences = read(train_path)
    scheme = _tagging_scheme(task, train_sentences, settings.label_encoding, train_path)
    # The majority-class baseline predicts the most frequent training tag for every word.
    most_common = collections.Counter(
        label for s in train_sentences for label in s.labels
    ).most_common(1)[0][0]
    train_sentences = scheme.encode_labels(train_sentences)
    logging.info(
        "%s: %d sentences, %d labels %s",
        train_path,
        len(train_sentences),
        len(scheme.label_map),
        list(scheme.label_map)[:20],
    )
    train = conll.features_to_arrays(
        conll.encode_sentences(train_sentences, tokenizer, scheme.label_map, max_seq_length),
        max_seq_length,
    )
    eval_set = functools.partial(
        _tagging_eval_set,
        read=read,
        scheme=scheme,
        tokenizer=tokenizer,
        max_seq_length=max_seq_length,
    )
    dev, dev_gold = eval_set("dev", dev_path)
    test = eval_set("test", test_path)[0] if test_path else None
    baseline = scheme.score_words(dev_gold, [[most_common] * len(g) for g in dev_gold])
    num_labels = len(scheme.label_map)
    return TaskData(
        task,
        scheme.metric,
        lambda config: ElectraForTokenClassification(config, num_labels),
        train,
        dev,
        test,
        baseline[scheme.metric],
        labels=list(scheme.label_map.labels),
    )


# ---------------------------------------------------------------------------
# Sentence (pair) classification and regression
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class _SentenceSource:
    """Where a sentence task's examples come from and what their labels are."""

    read: Callable  # (split, path or None) -> examples
    train_examples: list
    paths: dict  # split -> the file given in the settings (None: from data_dir)
    labels: list | None
    is_regression: bool
    metric_kind: str


def _sentence_source(settings: FinetuningSettings) -> _SentenceSource:
    task = settings.task_name
    paths = {"train": settings.train_file, "dev": settings.dev_file, "test": settings.test_file}
    if task in CUSTOM_TASKS:
        is_regression = task == "regression"
        train_examples = glue.read_examples_file(settings.train_file, is_regression=is_regression)
        labels = (
            None
            if is_regression
            else sorted({e.label for e in train_examples if e.label is not None})
        )

        def read(split, path):
            return glue.read_examples_file(path, labels=labels, is_regression=is_regression)

        kind = "pearson_spearman" if is_regression else "accuracy"
        return _SentenceSource(read, train_examples, paths, labels, is_regression, kind)
    spec = glue.get_task(task)
    splits = {
        "train": "train",
        "dev": "dev_matched" if "dev_matched" in spec.splits else "dev",
        "test": "test_matched" if "test_matched" in spec.splits else "test",
    }

    def read_glue(split, path):
        if path:
            return glue.read_examples_file(
                path, labels=spec.labels, is_regression=spec.is_regression
            )
        return glue.read_glue(spec, settings.data_dir, splits[split])

    train_examples = read_glue("train", paths["train"])
    return _SentenceSource(
        read_glue, train_examples, paths, spec.labels, spec.is_regression, spec.metric
    )


def _sentence_eval_set(name, source, encode, data_dir):
    path = source.paths[name]
    try:
        examples = source.read(name, path)
    except FileNotFoundError:
        if name == "test":
            return None
        raise
    arrays = encode(examples)
    gold = arrays["label_ids"]
    is_regression, labels = source.is_regression, source.labels
    has_labels = not (np.isnan(gold).any() if is_regression else (gold < 0).any())

    def predictions(outputs):
        return outputs if is_regression else outputs.argmax(-1)

    def write(outputs, out_path):
        rows = (
            f"{i}\t{float(p):.6f}\n" if is_regression else f"{i}\t{labels[p]}\n"
            for i, p in enumerate(predictions(outputs))
        )
        files.write_text(out_path, "index\tprediction\n" + "".join(rows))

    def score(outputs):
        return metrics.glue_metrics(source.metric_kind, gold, predictions(outputs))

    return EvalSet(name, path or data_dir, arrays, score if has_labels else None, write, "tsv")


_GLUE_METRIC = {"mcc": "mcc", "f1": "f1", "accuracy": "accuracy", "pearson_spearman": "corr"}


def _sentence_task(settings: FinetuningSettings, tokenizer) -> TaskData:
    task = settings.task_name
    source = _sentence_source(settings)
    is_regression, labels = source.is_regression, source.labels
    train_name = source.paths["train"] or settings.data_dir
    train_examples = source.train_examples
    if not train_examples:
        raise InputError(f"no training examples in {train_name}")
    encode = functools.partial(
        glue.encode_pairs,
        tokenizer=tokenizer,
        max_seq_length=settings.max_seq_length,
        labels=labels,
        is_regression=is_regression,
    )
    train = encode(train_examples)
    unlabelled = np.isnan(train["label_ids"]) if is_regression else train["label_ids"] < 0
    if unlabelled.any():
        raise InputError(f"{train_name}: {int(unlabelled.sum())} training example(s) have no label")
    metric = _GLUE_METRIC[source.metric_kind]
    dev = _sentence_eval_set("dev", source, encode, settings.data_dir)
    if dev.score is None:
        raise InputError(f"{dev.path}: the dev set must be labelled to select the best checkpoint")
    has_test = source.paths["test"] or task not in CUSTOM_TASKS
    test = _sentence_eval_set("test", source, encode, settings.data_dir) if has_test else None
    baseline = None
    if not is_regression:
        majority = np.bincount(train["label_ids"], minlength=len(labels)).argmax()
        gold = dev.arrays["label_ids"]
        baseline = metrics.glue_metrics(source.metric_kind, gold, np.full_like(gold, majority))[
            metric
        ]
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


# ---------------------------------------------------------------------------
# SQuAD
# ---------------------------------------------------------------------------


def _squad_arrays(features, is_training, max_seq_length):
    n = len(features)
    arrays = {k: np.zeros((n, max_seq_length), np.int32) for k in INPUT_KEYS}
    for i, f in enumerate(features):
        arrays["input_ids"][i, : len(f.input_ids)] = f.input_ids
        arrays["input_mask"][i, : len(f.input_ids)] = 1
        arrays["segment_ids"][i, : len(f.segment_ids)] = f.segment_ids
    if is_training:
        arrays["start_positions"] = np.array([f.start_position for f in features], np.int32)
        arrays["end_positions"] = np.array([f.end_position for f in features], np.int32)
        arrays["is_impossible"] = np.array([f.is_impossible for f in features], np.int32)
    return arrays


def _read_squad(path, is_training):
    try:
        return squad.read_squad(path, is_training)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a SQuAD JSON file ({type(e).__name__}: {e})") from None


def _squad_dev_set(settings, tokenizer, dev_path, build, version_2):
    dev_examples, dev_data = _read_squad(dev_path, False)
    dev_features = build(dev_examples, is_training=False)

    def answers(outputs):
        return squad.postprocess(
            dev_examples,
            dev_features,
            outputs["start_logits"],
            outputs["end_logits"],
            tokenizer,
            settings.n_best_size,
            settings.max_answer_length,
            version_2_with_negative=version_2,
        )

    def score(outputs):
        predictions, _, _ = answers(outputs)
        if version_2:
            out = metrics.squad_v2_scores(dev_data, predictions)
            return {"f1": out["f1"], "exact_match": out["exact"]}
        return metrics.squad_v1_scores(dev_data, predictions)

    def write(outputs, out_path):
        predictions, _, _ = answers(outputs)
        files.write_text(out_path, json.dumps(predictions, indent=1, ensure_ascii=False))

    arrays = _squad_arrays(dev_features, False, settings.max_seq_length)
    return EvalSet("dev", dev_path, arrays, score, write, "json")


def _squad_task(settings: FinetuningSettings, tokenizer) -> TaskData:
    task = settings.task_name
    version_2 = task == "squadv2"
    suffix = "v2.0" if version_2 else "v1.1"
    train_path = settings.train_file or os.path.join(settings.data_dir, f"train-{suffix}.json")
    dev_path = settings.dev_file or os.path.join(settings.data_dir, f"dev-{suffix}.json")
    for flag, path in (("train_file", train_path), ("dev_file", dev_path)):
        if not tf.io.gfile.exists(path):
            raise SettingsError(f"--{flag}: {path} does not exist")
    build = functools.partial(
        squad.build_squad_features,
        tokenizer=tokenizer,
        max_seq_length=settings.max_seq_length,
        doc_stride=settings.doc_stride,
        max_query_length=settings.max_query_length,
    )
    train_examples, _ = _read_squad(train_path, True)
    train = _squad_arrays(build(train_examples, is_training=True), True, settings.max_seq_length)
    dev = _squad_dev_set(settings, tokenizer, dev_path, build, version_2)
    return TaskData(
        task, "f1", lambda config: ElectraForQuestionAnswering(config, version_2), train, dev, None
    )
