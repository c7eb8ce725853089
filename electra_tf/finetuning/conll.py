"""Token classification data: CoNLL / CoNLL-U reading, label maps, alignment.

Words are split into wordpieces with ``tokenizer.tokenize_words``; each word's
label sits on its FIRST wordpiece (as in the original ELECTRA), every other
position has label weight 0.  Sentences that do not fit ``max_seq_length``
are split into several windows at word boundaries, and ``words_predictions``
stitches per-window predictions back to exactly one label per word.
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import logging
import os
from collections.abc import Iterable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


class ConllFormatError(ValueError):
    """Bad input in a CoNLL file; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One sentence: words, their labels and the 1-based source line of each."""

    words: tuple[str, ...]
    labels: tuple[str, ...]
    line_numbers: tuple[int, ...] = ()
    source: str = ""

    def __len__(self):
        return len(self.words)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _open_bytes(path: PathLike):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    raw = tf.io.gfile.GFile(os.fspath(path), "rb").read()
    if os.fspath(path).endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw


def _is_conllu(path: PathLike) -> bool:
    name = os.fspath(path)
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(".conllu")


def _lines(raw: bytes, name: str):
    """(line number, text) of each line, decoded as UTF-8; an error names the line and byte."""
    for lineno, line_bytes in enumerate(raw.split(b"\n"), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConllFormatError(
                f"{name}:{lineno}: not valid UTF-8 (byte 0x{line_bytes[e.start]:02x}"
                f" at column {e.start + 1})"
            ) from None
        if lineno == 1:
            line = line.lstrip("\ufeff")
        yield lineno, line.rstrip("\r\n")


def _rows(raw: bytes, name: str, conllu: bool, comment_prefix: str | None, columns):
    """(line number, columns) of each data line, and None at each sentence boundary.

    Every data line must have the first one's column count, and `columns` must exist in it.
    """
    num_columns = first_data_line = None
    for lineno, line in _lines(raw, name):
        if not line.strip():
            yield None
            continue
        cols = line.split("\t") if conllu else line.split()
        if conllu:
            cols = [c.strip() for c in cols]
        if comment_prefix and line.startswith(comment_prefix):
            if conllu or num_columns is None or len(cols) != num_columns:
                continue
        if cols[0] == "-DOCSTART-":
            yield None
            continue
        if conllu and ("-" in cols[0] or "." in cols[0]):
            continue  # multiword token range or empty node
        if num_columns is None:
            num_columns, first_data_line = len(cols), lineno
            for c in columns:
                if not -num_columns <= c < num_columns:
                    raise ConllFormatError(
                        f"{name}:{lineno}: column {c} requested but the line has "
                        f"{num_columns} columns"
                    )
        elif len(cols) != num_columns:
            raise ConllFormatError(
                f"{name}:{lineno}: expected {num_columns} columns (as on line "
                f"{first_data_line}) but found {len(cols)}: {line!r}"
            )
        yield lineno, cols


def read_conll(
    path: PathLike,
    word_column: int = 0,
    label_column: int = -1,
    comment_prefix: str | None = "#",
    labels: Iterable[str] | None = None,
    conllu: bool | None = None,
) -> list[Sentence]:
    """Reads a CoNLL-style file into sentences.

    Args:
      path: file (local or any tf.io.gfile path); ``.gz`` is decompressed.
      word_column / label_column: column indices (negative counts from the end).
        For CoNLL-U the defaults (0, -1) mean FORM (1) and UPOS (3).
      comment_prefix: lines starting with it are comments.  In plain CoNLL files
        (where ``#`` is also a real token, e.g. CoNLL-2000's ``# # O``) a line
        is only a comment if its column count differs from the file's; pass
        None to disable comments.
      labels: when given (e.g. a LabelMap or the training file's labels), a
        label outside it is an error naming file and line.
      conllu: force/disable CoNLL-U mode; default: by ``.conllu[.gz]`` suffix.
    """
    name = os.fspath(path)
    if conllu is None:
        conllu = _is_conllu(path)
    if conllu and (word_column, label_column) == (0, -1):
        word_column, label_column = 1, 3  # FORM, UPOS
    allowed = None
    if labels is not None:
        allowed = set(labels.labels if isinstance(labels, LabelMap) else labels)
    raw = _open_bytes(path)
    if not raw.strip():
        raise ConllFormatError(f"{name}:1: empty file (no sentences)")

    sentences: list[Sentence] = []
    words, tags, lines = [], [], []
    rows = _rows(raw, name, conllu, comment_prefix, (word_column, label_column))
    for row in itertools.chain(rows, [None]):
        if row is None:  # a sentence boundary, or the end of the file
            if words:
                sentences.append(Sentence(tuple(words), tuple(tags), tuple(lines), name))
                words, tags, lines = [], [], []
            continue
        lineno, cols = row
        tag = cols[label_column]
        if allowed is not None and tag not in allowed:
            raise ConllFormatError(
                f"unknown label {tag!r} at {name}:{lineno}; labels come from the training file"
            )
        words.append(cols[word_column])
        tags.append(tag)
        lines.append(lineno)
    if not sentences:
        raise ConllFormatError(f"{name}:1: no sentences found (only comments or -DOCSTART- lines)")
    return sentences


# ---------------------------------------------------------------------------
# Labels and tagging schemes
# ---------------------------------------------------------------------------


def detect_scheme(labels: Iterable[str]) -> str | None:
    """'BIOES', 'BIO' (IOB1/IOB2) or None for plain tags such as POS."""
    prefixes = set()
    for label in labels:
        if label == "O":
            continue
        if len(label) > 2 and label[1] == "-" and label[0] in "BIES":
            prefixes.add(label[0])
        else:
            return None
    if not prefixes:
        return None
    if prefixes & {"E", "S"}:
        return "BIOES"
    return "BIO"


def iob_to_bioes(tags: Sequence[str]) -> list[str]:
    """IOB1/IOB2 tags to BIOES, chunks read with conlleval's rules."""
    from electra_tf.finetuning import metrics  # pylint: disable=g-import-not-at-top

    out = ["O"] * len(tags)
    for typ, a, b in metrics.get_entities(tags):
        if a == b:
            out[a] = f"S-{typ}"
        else:
            out[a] = f"B-{typ}"
            out[b] = f"E-{typ}"
            for i in range(a + 1, b):
                out[i] = f"I-{typ}"
    return out


def bioes_to_iob2(tags: Sequence[str]) -> list[str]:
    """BIOES (or any IOB variant) to IOB2."""
    from electra_tf.finetuning import metrics  # pylint: disable=g-import-not-at-top

    out = ["O"] * len(tags)
    for typ, a, b in metrics.get_entities(tags):
        out[a] = f"B-{typ}"
        for i in range(a + 1, b + 1):
            out[i] = f"I-{typ}"
    return out


class LabelMap:
    """Label <-> id with a stable order ('O' first, then sorted)."""

    def __init__(self, labels: Sequence[str]):
        labels = list(labels)
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate labels in {labels}")
        self.labels: tuple[str, ...] = tuple(labels)
        self._ids = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_sentences(cls, sentences: Iterable[Sentence]) -> LabelMap:
        seen = set()
        for s in sentences:
            seen.update(s.labels)
        ordered = (["O"] if "O" in seen else []) + sorted(seen - {"O"})
        return cls(ordered)

    @property
    def scheme(self) -> str | None:
        return detect_scheme(self.labels)

    def __len__(self):
        return len(self.labels)

    def __contains__(self, label):
        return label in self._ids

    def __iter__(self):
        return iter(self.labels)

    def __eq__(self, other):
        return isinstance(other, LabelMap) and other.labels == self.labels

    def __repr__(self):
        return f"LabelMap({list(self.labels)!r})"

    def id(self, label: str) -> int:
        try:
            return self._ids[label]
        except KeyError:
            raise KeyError(f"unknown label {label!r}; known: {list(self.labels)}") from None

    def label(self, label_id: int) -> str:
        return self.labels[int(label_id)]

    def encode(self, labels: Sequence[str]) -> list[int]:
        return [self.id(label) for label in labels]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.labels[int(i)] for i in ids]

    def to_json(self) -> str:
        return json.dumps({"labels": list(self.labels)}, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> LabelMap:
        return cls(json.loads(text)["labels"])

    def save(self, path: PathLike) -> None:
        from electra_tf import files  # pylint: disable=g-import-not-at-top

        files.write_text(path, self.to_json())

    @classmethod
    def load(cls, path: PathLike) -> LabelMap:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top

        with tf.io.gfile.GFile(os.fspath(path), "r") as f:
            return cls.from_json(f.read())


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class WindowFeatures:
    """One model input: a window of consecutive words from one sentence."""

    sentence_index: int
    first_word: int  # index in the sentence of the window's 1st word
    num_words: int  # words covered by this window
    sentence_num_words: int  # words in the whole sentence
    input_ids: list[int]  # [CLS] pieces [SEP], unpadded
    label_ids: list[int]  # same length; 0 where not labelled
    label_weights: list[int]  # 1 on each word's first piece when labelled
    word_positions: list[int]  # position of each word's first piece
    label_names: tuple[str, ...] = ()
    num_truncated_words: int = 0
    max_seq_length: int = 0  # the length the window will be padded to


def _pack_sentence(s_idx, pieces, label_ids, truncated, labelled, special, names, max_seq_length):
    """A sentence's windows: greedy packing of its words' pieces at word boundaries."""
    capacity = max_seq_length - 2
    n = len(pieces)
    windows = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + len(pieces[end]) <= capacity:
            used += len(pieces[end])
            end += 1
        ids, lab, wts, pos = [special.cls], [0], [0], []
        for w in range(start, end):
            pos.append(len(ids))
            ids.extend(pieces[w])
            lab.extend([label_ids[w]] + [0] * (len(pieces[w]) - 1))
            wts.extend([1 if labelled else 0] + [0] * (len(pieces[w]) - 1))
        ids.append(special.sep)
        lab.append(0)
        wts.append(0)
        windows.append(
            WindowFeatures(
                s_idx,
                start,
                end - start,
                n,
                ids,
                lab,
                wts,
                pos,
                names,
                sum(truncated[start:end]),
                max_seq_length,
            )
        )
        start = end
        if start >= n:
            return windows


def encode_sentences(
    sentences: Sequence[Sentence], tokenizer, label_map: LabelMap | None, max_seq_length: int
) -> list[WindowFeatures]:
    """Sentences -> windows of at most ``max_seq_length`` wordpieces.

    Sentences without labels (``labels == ()``) or ``label_map=None`` give
    windows with all label weights 0 (for prediction).  A word whose pieces
    alone exceed the window keeps only the first ``max_seq_length - 2`` pieces
    (counted and logged); a word with no pieces at all is given [UNK].
    """
    if max_seq_length < 3:
        raise ValueError("max_seq_length must be at least 3")
    capacity = max_seq_length - 2
    special = tokenizer.special
    names = label_map.labels if label_map is not None else ()
    features: list[WindowFeatures] = []
    truncated_total = 0
    all_pieces = (
        tokenizer.tokenize_words([w for s in sentences for w in s.words]) if sentences else []
    )
    offset = 0
    for s_idx, sentence in enumerate(sentences):
        n = len(sentence.words)
        pieces = [list(p) or [special.unk] for p in all_pieces[offset : offset + n]]
        offset += n
        labelled = label_map is not None and len(sentence.labels) > 0
        if labelled and len(sentence.labels) != n:
            raise ValueError(f"sentence {s_idx}: {n} words but {len(sentence.labels)} labels")
        truncated = [False] * n
        for i, p in enumerate(pieces):
            if len(p) > capacity:
                pieces[i] = p[:capacity]
                truncated[i] = True
        label_ids = label_map.encode(sentence.labels) if labelled else [0] * n
        for window in _pack_sentence(
            s_idx, pieces, label_ids, truncated, labelled, special, names, max_seq_length
        ):
            truncated_total += window.num_truncated_words
            features.append(window)
    if truncated_total:
        logger.warning(
            "%d word(s) had more than %d wordpieces and were truncated", truncated_total, capacity
        )
    return features


def features_to_arrays(
    features: Sequence[WindowFeatures], max_seq_length: int | None = None
) -> dict:
    """Padded int32 numpy arrays keyed like the model inputs.

    ``max_seq_length`` defaults to the one given to ``encode_sentences``.
    """
    if max_seq_length is None:
        max_seq_length = max((f.max_seq_length or len(f.input_ids) for f in features), default=2)
    n = len(features)
    arrays = {
        k: np.zeros((n, max_seq_length), np.int32)
        for k in ("input_ids", "input_mask", "segment_ids", "label_ids", "label_weights")
    }
    for i, f in enumerate(features):
        L = len(f.input_ids)
        if L > max_seq_length:
            raise ValueError(f"window {i} has {L} tokens > max_seq_length {max_seq_length}")
        arrays["input_ids"][i, :L] = f.input_ids
        arrays["input_mask"][i, :L] = 1
        arrays["label_ids"][i, :L] = f.label_ids
        arrays["label_weights"][i, :L] = f.label_weights
    return arrays


def words_predictions(
    features: Sequence[WindowFeatures], per_token_label_ids, label_map: LabelMap | None = None
) -> list[list[str]]:
    """Per-token predicted label ids ([num_windows, seq_len]) -> word labels.

    Each word takes the prediction at its first wordpiece; windows of the same
    sentence are stitched so every original word gets exactly one label.
    Logits ([num_windows, seq_len, num_labels]) are accepted too (argmax).
    """
    per_token_label_ids = np.asarray(per_token_label_ids)
    if per_token_label_ids.ndim == 3:
        per_token_label_ids = per_token_label_ids.argmax(axis=-1)
    if len(features) != len(per_token_label_ids):
        raise ValueError(f"{len(features)} windows but {len(per_token_label_ids)} prediction rows")
    if label_map is not None:
        names = label_map.labels
    elif features:
        names = features[0].label_names
    else:
        names = ()
    num_sentences = max((f.sentence_index for f in features), default=-1) + 1
    out: list[list[str | None]] = [None] * num_sentences  # type: ignore
    for f, row in zip(features, per_token_label_ids):
        if out[f.sentence_index] is None:
            out[f.sentence_index] = [None] * f.sentence_num_words
        sent = out[f.sentence_index]
        for k, pos in enumerate(f.word_positions):
            label_id = int(row[pos])
            sent[f.first_word + k] = names[label_id] if names else str(label_id)
    result = []
    for i, sent in enumerate(out):
        if sent is None:
            raise ValueError(f"no window for sentence {i}")
        missing = [j for j, label in enumerate(sent) if label is None]
        if missing:
            raise ValueError(f"sentence {i}: no prediction for words {missing}")
        result.append(sent)
    return result
