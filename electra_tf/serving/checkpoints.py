"""Finding and loading a fine-tuned model to export: checkpoint discovery (a run_finetuning
--model_dir, a seed folder, a prefix), its metadata files (config, vocab, label map, settings),
and label-map reading."""

from __future__ import annotations

import glob
import json
import os

import tensorflow as tf

from electra_tf.filenames import (
    BEST_CHECKPOINT_DIR,
    BEST_CHECKPOINT_PREFIX,
    CONFIG_FILE,
    LABEL_MAP_FILES,
    RESULTS_FILE,
    SEED_DIR_PREFIX,
    SETTINGS_FILES,
    TOKEN_CLASSIFIER_PREFIX,
    VOCAB_FILE,
)
from electra_tf.serving.common import ExportError


def _best_seed_dir(model_dir: str) -> str | None:
    seeds = sorted(glob.glob(os.path.join(model_dir, SEED_DIR_PREFIX + "*")))
    seeds = [s for s in seeds if glob.glob(os.path.join(s, BEST_CHECKPOINT_DIR, "*.index"))]
    if not seeds:
        return None
    results = os.path.join(model_dir, RESULTS_FILE)
    if os.path.exists(results):
        with open(results, encoding="utf-8") as f:
            scores = json.load(f).get("scores", {})
        ranked = sorted(
            (
                (score, seed)
                for seed, score in scores.items()
                if os.path.join(model_dir, f"{SEED_DIR_PREFIX}{seed}") in seeds
            ),
            key=lambda pair: -float(pair[0]),
        )
        if ranked:
            return os.path.join(model_dir, f"{SEED_DIR_PREFIX}{ranked[0][1]}")
    return seeds[0]


def resolve_checkpoint(path: str):
    """(checkpoint prefix, folders to look for metadata in, nearest first)."""
    path = os.path.abspath(path.rstrip("/"))
    if tf.io.gfile.exists(path + ".index"):
        folder = os.path.dirname(path)
        return path, [folder, os.path.dirname(folder), os.path.dirname(os.path.dirname(folder))]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} is neither a checkpoint prefix nor a directory")
    searched = [path]
    seed_dir = _best_seed_dir(path)
    if seed_dir is not None:  # a run_finetuning --model_dir
        return (
            os.path.join(seed_dir, BEST_CHECKPOINT_DIR, BEST_CHECKPOINT_PREFIX),
            [os.path.join(seed_dir, BEST_CHECKPOINT_DIR), seed_dir, path],
        )
    if os.path.isdir(os.path.join(path, BEST_CHECKPOINT_DIR)):  # a seed_<s> folder
        prefix = tf.train.latest_checkpoint(
            os.path.join(path, BEST_CHECKPOINT_DIR)
        ) or os.path.join(path, BEST_CHECKPOINT_DIR, BEST_CHECKPOINT_PREFIX)
        return prefix, [os.path.join(path, BEST_CHECKPOINT_DIR), path, os.path.dirname(path)]
    for name in (BEST_CHECKPOINT_PREFIX, TOKEN_CLASSIFIER_PREFIX):
        if tf.io.gfile.exists(os.path.join(path, name + ".index")):
            return os.path.join(path, name), [
                path,
                os.path.dirname(path),
                os.path.dirname(os.path.dirname(path)),
            ]
    latest = tf.train.latest_checkpoint(path)
    if latest:
        return latest, [path, os.path.dirname(path)]
    raise FileNotFoundError(
        f"no checkpoint in {path}: expected a run_finetuning --model_dir (seed_<s>/best/model.*), "
        f"a seed_<s> folder, a folder with model.index or model.ckpt.index, or a checkpoint prefix "
        f"(searched {searched})"
    )


def _find(folders, names):
    for folder in folders:
        for name in names:
            candidate = os.path.join(folder, name)
            if os.path.exists(candidate):
                return candidate
    return None


def read_labels(path: str) -> list:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, list):
        return [str(label) for label in data]
    if "labels" in data:
        return [str(label) for label in data["labels"]]
    id2label = data.get("id2label") or {}
    if id2label:
        return [id2label[str(i)] for i in range(len(id2label))]
    raise ExportError(f'{path}: no labels (expected {{"labels": [...]}} or an id2label map)')


TASKS = ("token_classification", "classification", "regression", "squad", "squadv2")


def load_token_classifier(checkpoint: str, config_file=None, vocab_file=None, label_map_file=None):
    """load_finetuned for an ElectraForTokenClassification."""
    return load_finetuned(
        checkpoint, "token_classification", config_file, vocab_file, label_map_file
    )


def load_finetuned(
    checkpoint: str,
    task: str = "token_classification",
    config_file=None,
    vocab_file=None,
    label_map_file=None,
):
    """A fine-tuned model plus (vocab, labels, settings, sources).

    task: token_classification (ElectraForTokenClassification),
    classification or regression (ElectraForSequenceClassification; labels
    None for regression), squad or squadv2 (ElectraForQuestionAnswering; no
    labels).  Metadata files are looked for beside the
    checkpoint, then in its parent folders: config.json, vocab.txt,
    label_map.json (or labels.json / token_classification.json; not needed for
    regression) and, optionally, a settings JSON (finetuning_settings.json:
    max_seq_length, do_lower_case).
    """
    from electra_tf.data import tokenization
    from electra_tf.finetuning import models  # pylint: disable=import-outside-toplevel
    from electra_tf.model.config import ElectraConfig  # pylint: disable=import-outside-toplevel

    if task not in TASKS:
        raise ExportError(f"task must be one of {TASKS}, got {task!r}")
    prefix, folders = resolve_checkpoint(checkpoint)
    sources = _metadata_files(prefix, folders, task, config_file, vocab_file, label_map_file)
    settings = {}
    if "settings" in sources:
        with open(sources["settings"], encoding="utf-8") as f:
            settings = json.load(f)
    config = ElectraConfig.load(sources["config"])
    vocab = tokenization.load_vocab(sources["vocab"])
    labels = read_labels(sources["labels"]) if "labels" in sources else None
    if len(vocab) != config.vocab_size:
        raise ExportError(
            f"{sources['vocab']} has {len(vocab)} tokens but {sources['config']} "
            f"says vocab_size {config.vocab_size}"
        )
    if task == "token_classification":
        model = models.ElectraForTokenClassification(config, len(labels))
    elif task in ("squad", "squadv2"):
        model = models.ElectraForQuestionAnswering(config, version_2=task == "squadv2")
    else:
        model = models.ElectraForSequenceClassification(
            config, len(labels or [None]), is_regression=task == "regression"
        )
    model.build()
    try:
        tf.train.Checkpoint(model=model).read(prefix).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        what = f"{len(labels)} labels" if labels else "one output"
        raise ExportError(
            f"{prefix} does not fit a {task} model with {what} and config {sources['config']}: {e}"
        ) from None
    return model, vocab, labels, settings, sources


def _metadata_files(prefix, folders, task, config_file, vocab_file, label_map_file):
    """{"checkpoint", "config", "vocab"[, "labels"][, "settings"]: path}: the given files, else
    the nearest in `folders`; a missing required one is an error naming the flag to pass."""
    sources = {"checkpoint": prefix}
    wanted = [("config", config_file, (CONFIG_FILE,)), ("vocab", vocab_file, (VOCAB_FILE,))]
    if task in ("token_classification", "classification"):
        wanted.append(("labels", label_map_file, LABEL_MAP_FILES))
    for key, given, names in wanted:
        found = given or _find(folders, names)
        if not found:
            flag = {"config": "--config_file", "vocab": "--vocab_file", "labels": "--label_map"}[
                key
            ]
            raise FileNotFoundError(
                f"no {' / '.join(names)} beside {prefix} (looked in {folders}); pass {flag}"
            )
        sources[key] = found
    settings_path = _find(folders, SETTINGS_FILES)
    if settings_path:
        sources["settings"] = settings_path
    return sources
