"""Sentence(-pair) classification and regression data (GLUE and custom files).

Readers for the GLUE TSV layout (as written by GLUE's download script), an
optional TensorFlow Datasets path, a generic CSV / TSV / JSONL loader and the
[CLS] A [SEP] B [SEP] encoding with BERT's longest-first truncation.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np

PathLike = str | os.PathLike
Label = str | float | None


class DataFormatError(ValueError):
    """Bad input in a data file; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class Example:
    guid: str
    text_a: str
    text_b: str | None = None
    label: Label = None  # class name (str), score (float) or None (unlabelled)


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """How one GLUE task is laid out and scored."""

    name: str  # canonical lower-case name, e.g. "sst-2"
    dir_name: str  # folder in the GLUE layout, e.g. "SST-2"
    labels: tuple[str, ...] | None  # None for regression
    metric: str  # accuracy | mcc | f1 | pearson_spearman
    text_a: str | int  # header name, or column index if no header
    text_b: str | int | None
    label: str | int
    has_header: bool = True
    test_text_a: str | int | None = None  # when test differs
    test_text_b: str | int | None = None
    splits: tuple[str, ...] = ("train", "dev", "test")
    tfds_name: str = ""
    tfds_text: tuple[str, ...] = ("sentence",)
    skip_malformed: bool = False  # QQP's train file has a few broken rows

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in [
        GlueTask(
            "cola",
            "CoLA",
            ("0", "1"),
            "mcc",
            3,
            None,
            1,
            has_header=False,
            test_text_a="sentence",
            tfds_name="cola",
        ),
        GlueTask(
            "sst-2", "SST-2", ("0", "1"), "accuracy", "sentence", None, "label", tfds_name="sst2"
        ),
        GlueTask(
            "mrpc",
            "MRPC",
            ("0", "1"),
            "f1",
            "#1 String",
            "#2 String",
            "Quality",
            tfds_name="mrpc",
            tfds_text=("sentence1", "sentence2"),
        ),
        GlueTask(
            "sts-b",
            "STS-B",
            None,
            "pearson_spearman",
            "sentence1",
            "sentence2",
            "score",
            tfds_name="stsb",
            tfds_text=("sentence1", "sentence2"),
        ),
        GlueTask(
            "qqp",
            "QQP",
            ("0", "1"),
            "f1",
            "question1",
            "question2",
            "is_duplicate",
            tfds_name="qqp",
            skip_malformed=True,
            tfds_text=("question1", "question2"),
        ),
        GlueTask(
            "mnli",
            "MNLI",
            ("contradiction", "entailment", "neutral"),
            "accuracy",
            "sentence1",
            "sentence2",
            "gold_label",
            splits=("train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"),
            tfds_name="mnli",
            tfds_text=("premise", "hypothesis"),
        ),
        GlueTask(
            "qnli",
            "QNLI",
            ("entailment", "not_entailment"),
            "accuracy",
            "question",
            "sentence",
            "label",
            tfds_name="qnli",
            tfds_text=("question", "sentence"),
        ),
        GlueTask(
            "rte",
            "RTE",
            ("entailment", "not_entailment"),
            "accuracy",
            "sentence1",
            "sentence2",
            "label",
            tfds_name="rte",
            tfds_text=("sentence1", "sentence2"),
        ),
        GlueTask(
            "wnli",
            "WNLI",
            ("0", "1"),
            "accuracy",
            "sentence1",
            "sentence2",
            "label",
            tfds_name="wnli",
            tfds_text=("sentence1", "sentence2"),
        ),
    ]
}

_ALIASES = {"sst2": "sst-2", "stsb": "sts-b", "sts": "sts-b", "mnli-m": "mnli"}


def get_task(name: str) -> GlueTask:
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise KeyError(f"unknown GLUE task {name!r}; known: {sorted(TASKS)}")
    return TASKS[key]


def _read_tsv(path: PathLike) -> list[tuple[int, list[str]]]:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    name = os.fspath(path)
    raw = tf.io.gfile.GFile(name, "rb").read()
    rows = []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise DataFormatError(
                f"{name}:{lineno}: not valid UTF-8 (at byte {e.start + 1})"
            ) from None
        text = text.rstrip("\r")
        if not text:
            continue
        rows.append((lineno, text.split("\t")))
    return rows


def _column(header: list[str] | None, key, name: str) -> int:
    if isinstance(key, int):
        return key
    if header is None or key not in header:
        raise DataFormatError(f"{name}:1: no column {key!r} in header {header}")
    return header.index(key)


def _glue_label(task: GlueTask, text: str, where: str) -> Label:
    """A GLUE label cell as the task's label (a float score for regression)."""
    raw = text.strip()
    if task.is_regression:
        try:
            return float(raw)
        except ValueError:
            raise DataFormatError(f"{where}: score {raw!r} is not a number") from None
    if raw not in task.labels:
        raise DataFormatError(
            f"{where}: unknown label {raw!r}; {task.name} labels are {list(task.labels)}"
        )
    return raw


def read_glue(task: str | GlueTask, data_dir: PathLike, split: str = "train") -> list[Example]:
    """Reads ``<data_dir>/<split>.tsv`` of a GLUE task.

    ``data_dir`` is the task folder (e.g. ``glue_data/SST-2``) or the GLUE root
    containing it.  Test splits come back with ``label=None``.
    """
    task = get_task(task) if isinstance(task, str) else task
    if split not in task.splits:
        raise ValueError(f"{task.name} has splits {task.splits}, not {split!r}")
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    data_dir = os.fspath(data_dir)
    if tf.io.gfile.isdir(os.path.join(data_dir, task.dir_name)):
        data_dir = os.path.join(data_dir, task.dir_name)
    path = os.path.join(data_dir, split + ".tsv")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found (GLUE {task.dir_name} {split})")
    rows = _read_tsv(path)
    is_test = split.startswith("test")
    has_header = task.has_header or is_test
    header = None
    if has_header:
        if not rows:
            raise DataFormatError(f"{path}:1: empty file")
        header = rows[0][1]
        rows = rows[1:]
    a_key = task.test_text_a if is_test and task.test_text_a is not None else task.text_a
    b_key = task.test_text_b if is_test and task.test_text_b is not None else task.text_b
    a_col = _column(header, a_key, path)
    b_col = None if b_key is None else _column(header, b_key, path)
    l_col = None if is_test else _column(header, task.label, path)
    width = len(header) if header is not None else (rows[0][1].__len__() if rows else 0)
    examples = []
    for lineno, cols in rows:
        needed = max(c for c in (a_col, b_col, l_col) if c is not None)
        if len(cols) != width or len(cols) <= needed:
            if task.skip_malformed:
                continue
            raise DataFormatError(
                f"{path}:{lineno}: expected {width} tab-separated columns, found {len(cols)}"
            )
        label = None if l_col is None else _glue_label(task, cols[l_col], f"{path}:{lineno}")
        examples.append(
            Example(f"{split}-{lineno}", cols[a_col], None if b_col is None else cols[b_col], label)
        )
    return examples


def load_tfds(
    task: str | GlueTask, split: str = "train", data_dir: str | None = None
) -> list[Example]:
    """Examples from TensorFlow Datasets ``glue/<task>`` (must be prepared).

    ``split`` accepts the TSV names (dev, dev_matched, ...) or TFDS names
    (validation, validation_matched, ...).  Nothing is downloaded.
    """
    task = get_task(task) if isinstance(task, str) else task
    split = split.replace("dev", "validation")
    name = f"glue/{task.tfds_name}"
    try:
        import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    except ImportError:
        raise ImportError(
            "tensorflow_datasets is not installed; install it or "
            "read the GLUE TSVs with read_glue()"
        ) from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except Exception as e:  # pylint: disable=broad-except
        raise RuntimeError(f"cannot open TFDS dataset {name}: {e}") from e
    if not prepared:
        raise FileNotFoundError(
            f"TFDS dataset {name} is not downloaded/prepared in "
            f"{builder.data_dir}; prepare it with `tfds build {name}` (or "
            f"tfds.load({name!r}, download=True)), or read the GLUE TSV files "
            "with read_glue()"
        )
    ds = builder.as_dataset(split=split)
    examples = []
    for i, ex in enumerate(tfds.as_numpy(ds)):
        texts = [ex[k].decode("utf-8") for k in task.tfds_text]
        label: Label
        if task.is_regression:
            label = float(ex["label"])
        else:
            label = None if int(ex["label"]) < 0 else task.labels[int(ex["label"])]
        examples.append(
            Example(
                f"{split}-{int(ex.get('idx', i))}",
                texts[0],
                texts[1] if len(texts) > 1 else None,
                label,
            )
        )
    return examples


def _json_records(text: str, name: str) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank JSON line."""
    records = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{name}:{lineno}: bad JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise DataFormatError(f"{name}:{lineno}: expected a JSON object")
        records.append((lineno, obj))
    return records


def _delimited_records(text: str, name: str, delimiter: str) -> list[tuple[int, dict]]:
    """(line number, {header: field}) of each non-empty CSV / TSV row after the header."""
    records = []
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    header = None
    for row in reader:
        if header is None:
            header = [h.strip() for h in row]
            continue
        if not row:
            continue
        if len(row) != len(header):
            raise DataFormatError(
                f"{name}:{reader.line_num}: expected "
                f"{len(header)} fields (header {header}), "
                f"found {len(row)}"
            )
        records.append((reader.line_num, dict(zip(header, row))))
    return records


def read_examples_file(
    path: PathLike, labels: Sequence[str] | None = None, is_regression: bool = False
) -> list[Example]:
    """Generic CSV / TSV (header row) or JSONL file of examples.

    Columns / keys: ``text`` or ``text_a``; optional ``text_b``; optional
    ``label``.  ``labels`` restricts class labels (given as strings; ints in
    JSON are compared by ``str()``); ``is_regression`` parses labels as float.
    Errors name the file and line.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    name = os.fspath(path)
    raw = tf.io.gfile.GFile(name, "rb").read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        lineno = raw[: e.start].count(b"\n") + 1
        raise DataFormatError(f"{name}:{lineno}: not valid UTF-8") from None
    if not text.strip():
        raise DataFormatError(f"{name}:1: empty file")
    lower = name.lower()
    if lower.endswith((".jsonl", ".json", ".ndjson")):
        records = _json_records(text, name)
    else:
        records = _delimited_records(text, name, "\t" if lower.endswith(".tsv") else ",")
    examples = []
    for lineno, rec in records:
        a = rec.get("text_a", rec.get("text"))
        if a is None:
            raise DataFormatError(f"{name}:{lineno}: no 'text' or 'text_a' field")
        b = rec.get("text_b")
        label: Label = rec.get("label")
        if label is not None and label != "":
            if is_regression:
                try:
                    label = float(label)
                except (TypeError, ValueError):
                    raise DataFormatError(
                        f"{name}:{lineno}: label {label!r} is not a number"
                    ) from None
            else:
                label = str(label)
                if labels is not None and label not in labels:
                    raise DataFormatError(
                        f"{name}:{lineno}: unknown label {label!r}; expected one of {list(labels)}"
                    )
        else:
            label = None
        examples.append(
            Example(str(rec.get("id", lineno)), str(a), None if b in (None, "") else str(b), label)
        )
    return examples


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


def truncate_pair(a: list[int], b: list[int], max_tokens: int) -> None:
    """Pops from the end of the longer list (b on ties) until they fit."""
    while len(a) + len(b) > max_tokens:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()


def _tokenize_all(tokenizer, texts: list[str], batch: int = 4096):
    out = []
    for i in range(0, len(texts), batch):
        ragged = tokenizer.tokenize(texts[i : i + batch])
        if getattr(ragged, "ragged_rank", 1) > 1:
            ragged = ragged.merge_dims(-2, -1)
        out.extend(ragged.to_list() if hasattr(ragged, "to_list") else ragged)
    return out


def encode_pairs(
    examples: Sequence[Example],
    tokenizer,
    max_seq_length: int,
    labels: Sequence[str] | None = None,
    is_regression: bool = False,
) -> dict[str, np.ndarray]:
    """Examples -> padded arrays: [CLS] A [SEP] (B [SEP]).

    Returns int32 input_ids / input_mask / segment_ids [n, max_seq_length]
    and ``label_ids`` (int32 class index, -1 when unlabelled) or float32
    scores for regression (NaN when unlabelled).
    """
    special = tokenizer.special
    a_ids = _tokenize_all(tokenizer, [e.text_a for e in examples])
    b_texts = [e.text_b for e in examples if e.text_b is not None]
    b_iter = iter(_tokenize_all(tokenizer, b_texts) if b_texts else [])
    n = len(examples)
    out = {
        k: np.zeros((n, max_seq_length), np.int32)
        for k in ("input_ids", "input_mask", "segment_ids")
    }
    if is_regression:
        out["label_ids"] = np.full((n,), np.nan, np.float32)
    else:
        out["label_ids"] = np.full((n,), -1, np.int32)
    label_index = {label: i for i, label in enumerate(labels or ())}
    for i, ex in enumerate(examples):
        a = list(a_ids[i])
        b = list(next(b_iter)) if ex.text_b is not None else None
        if b is None:
            a = a[: max_seq_length - 2]
            ids = [special.cls] + a + [special.sep]
            seg = [0] * len(ids)
        else:
            truncate_pair(a, b, max_seq_length - 3)
            ids = [special.cls] + a + [special.sep] + b + [special.sep]
            seg = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        out["input_ids"][i, : len(ids)] = ids
        out["input_mask"][i, : len(ids)] = 1
        out["segment_ids"][i, : len(seg)] = seg
        if ex.label is not None:
            if is_regression:
                out["label_ids"][i] = float(ex.label)
            elif labels is not None:
                if str(ex.label) not in label_index:
                    raise ValueError(f"example {ex.guid}: unknown label {ex.label!r}")
                out["label_ids"][i] = label_index[str(ex.label)]
    return out
