"""TF Serving exports of fine-tuned ELECTRA models: raw text in, entities / labels / answers out.

`export_token_classifier` writes a SavedModel in TF Serving's layout,
``<export_dir>/<version>/{saved_model.pb, variables/, assets/, assets.extra/}``,
whose graph does the whole pipeline:

1. tokenization of raw UTF-8 strings (`CoreBertTokenizer`: core TF ops only,
   so a stock ``tensorflow/serving`` binary, which has no tensorflow-text
   kernels, loads it; ``tokenizer="tensorflow_text"`` uses
   ``tensorflow_text.BertTokenizer`` instead and needs a server with those ops);
2. windowing: a text's words are packed greedily, at word boundaries, into
   windows of at most ``max_seq_length`` wordpieces ([CLS] ... [SEP]), exactly
   like ``conll.encode_sentences`` does for fine-tuning; nothing is dropped
   except the pieces of a single word beyond ``max_seq_length - 2``;
3. the model on every window, softmax, and first-sub-token alignment: each word
   takes the prediction at its first wordpiece (``conll.words_predictions``);
4. BIO / IOB1 / BIOES decoding into entity spans with conlleval's chunking
   rules (``metrics.get_entities``).

Signatures (a signature cannot return ragged tensors, so every per-word and
per-entity output is a dense ``[batch, max count in the batch]`` tensor padded
with "" / -1 / 0.0, and ``num_words`` / ``num_entities`` give the real lengths):

``serving_default`` -- input ``texts``: string ``[batch]`` (UTF-8; invalid
bytes are read as U+FFFD and never fail).  Outputs:

* ``num_words`` int32 [batch]; ``num_windows`` int32 [batch] (model inputs used)
* ``tokens`` string [batch, words]: each word exactly as it appears in the input
* ``labels`` string, ``label_ids`` int32, ``scores`` float32 (softmax
  probability of the chosen label at the word's first wordpiece) [batch, words]
* ``word_starts`` / ``word_ends`` int32 [batch, words]: character offsets,
  end exclusive, counted in Unicode code points of the input (Python ``str``
  indices: ``text[start:end] == token``; an ill-formed UTF-8 sequence counts
  as one character, as ``tf.strings.unicode_decode(errors="replace")`` delimits
  it).  ``word_start_bytes`` / ``word_end_bytes``: the same spans in UTF-8 bytes.
* ``num_entities`` int32 [batch]; per entity [batch, entities]:
  ``entity_types`` string, ``entity_texts`` string (the input's bytes of the
  span), ``entity_scores`` float32 (mean word score), ``entity_starts`` /
  ``entity_ends`` (characters), ``entity_start_bytes`` / ``entity_end_bytes``,
  ``entity_start_words`` / ``entity_end_words`` (word indices, end exclusive).

With ``tokenizer="tensorflow_text"`` offsets are tensorflow_text's: offsets
into its normalized text, which differ from the input's wherever lower-casing
or accent stripping changes byte lengths.

``predict_ids`` -- ``input_ids``, ``input_mask``, ``segment_ids`` int32
[batch, seq] in; ``logits`` float32 [batch, seq, num_labels] out.

Assets: ``vocab.txt`` and ``label_map.json`` (``{"labels": [...]}``, the
LabelMap format) in ``assets/``; ``assets.extra/tf_serving_warmup_requests``
holds a few PredictionLog warm-up requests.  ``assets.extra/export_info.json``
records the settings.

Also: `export_sequence_classifier` (ElectraForSequenceClassification:
``serving_default`` takes ``texts``, ``classify_pairs`` takes ``text_a`` /
``text_b``; outputs labels, label_ids, scores, probabilities, truncated,
num_pieces, or for regression scores = the predicted value) and
`export_question_answering` (ElectraForQuestionAnswering: ``serving_default``
takes ``question`` / ``context``; outputs answer, has_answer, score,
null_score_diff, answer_start / answer_end (characters), answer_start_byte /
answer_end_byte, num_windows).  Both tokenize with CoreBertTokenizer.

Versions are written atomically: into ``<export_dir>/.tmp-<version>-<pid>``
(TF Serving ignores names that are not integers), then renamed.  An existing
version is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from electra_tf.serving.core_wordpiece import CoreBertTokenizer

SERVING_SIGNATURE = "serving_default"
IDS_SIGNATURE = "predict_ids"
INPUT_KEY = "texts"
LABEL_MAP_ASSET = "label_map.json"
VOCAB_ASSET = "vocab.txt"
WARMUP_FILE = "tf_serving_warmup_requests"
EXPORT_INFO_FILE = "export_info.json"
TOKENIZERS = ("core", "tensorflow_text")
# Windows per model call in the token classifier's graph (sorted by length first): a few
# per call keeps padding low; measured in bench/RESULTS.md (serving).
WINDOWS_PER_MODEL_CALL = 8
WARMUP_TEXTS = (
    "George Washington was born in Westmoreland County , Virginia .",
    "Sioux Falls Arena ( Sioux Falls , South Dakota )",
    "",
)

_INT64_MAX = tf.int64.max
# Prefix codes for conlleval's chunk rules (metrics._split_tag reads the first letter).
_O, _B, _I, _E, _S, _DOT, _OTHER = range(7)
_PREFIX_CODES = {"O": _O, "B": _B, "I": _I, "E": _E, "S": _S, ".": _DOT}


def _check_vocab_and_length(vocab, model, max_seq_length, minimum, layout):
    """The checks every exported signature needs before it is traced."""
    for token in ("[CLS]", "[SEP]", "[UNK]"):
        if token not in vocab:
            raise ExportError(f"the vocabulary lacks {token}")
    if max_seq_length < minimum:
        raise ExportError(f"max_seq_length must be at least {minimum} ({layout})")
    if max_seq_length > model.config.max_position_embeddings:
        raise ExportError(
            f"max_seq_length {max_seq_length} exceeds the model's "
            f"max_position_embeddings {model.config.max_position_embeddings}"
        )


class ExportError(ValueError):
    """An export cannot be written (existing version, bad inputs); the message says why."""


def _split_tag(tag: str):
    """(prefix letter, entity type) as electra_tf.finetuning.metrics reads a tag."""
    prefix, rest = tag[:1], tag[1:]
    entity_type = rest.split("-", 1)[-1] if rest else ""
    return prefix, (entity_type or "_")


def _isin(values, codes):
    out = tf.zeros_like(values, tf.bool)
    for code in codes:
        out |= tf.equal(values, code)
    return out


def _chunk_ends(prev_prefix, prefix, prev_type, entity_type):
    """metrics._chunk_ends, element-wise on prefix codes / type ids."""
    return (
        _isin(prev_prefix, (_E, _S))
        | (_isin(prev_prefix, (_B, _I)) & _isin(prefix, (_B, _S, _O)))
        | (~_isin(prev_prefix, (_O, _DOT)) & tf.not_equal(prev_type, entity_type))
    )


def _chunk_starts(prev_prefix, prefix, prev_type, entity_type):
    """metrics._chunk_starts, element-wise on prefix codes / type ids."""
    return (
        _isin(prefix, (_B, _S))
        | (_isin(prefix, (_I, _E)) & _isin(prev_prefix, (_E, _S, _O)))
        | (~_isin(prefix, (_O, _DOT)) & tf.not_equal(prev_type, entity_type))
    )


def _shift(values, fill, forward):
    """values moved one place later (forward) or earlier, `fill` in the gap; same length."""
    fill = tf.reshape(tf.cast(fill, values.dtype), [1])
    n = tf.size(values)
    if forward:
        return tf.concat([fill, values], 0)[:n]
    return tf.concat([values, fill], 0)[1 : n + 1]


def _char_offsets(texts, byte_offsets):
    """Characters of each text before each byte offset ([batch, n] int64; -1 stays -1).

    Characters are code points as tf.strings.unicode_decode(errors="replace")
    reads them (an ill-formed sequence is one character).  A sentinel column on
    both sides keeps tf.searchsorted's internal reshapes well defined when every
    text, or every row of offsets, is empty.
    """
    _, char_starts = tf.strings.unicode_decode_with_offsets(
        texts, "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    char_starts = tf.cast(char_starts, tf.int64).to_tensor(default_value=_INT64_MAX)
    sentinel = tf.fill([tf.shape(texts)[0], 1], tf.constant(_INT64_MAX, tf.int64))
    chars = tf.searchsorted(
        tf.concat([char_starts, sentinel], 1),
        tf.concat([byte_offsets, sentinel], 1),
        side="left",
        out_type=tf.int32,
    )[:, :-1]
    return tf.where(byte_offsets < 0, -1, chars)


def _model_caller(model):
    """model(features) as a plain function, which tf.Module does not track."""

    def call(features):
        return model(features, training=False)

    return call


class TokenClassifierServer(tf.Module):
    """Raw text -> words, labels, scores, offsets and entities, in one TF graph."""

    def __init__(
        self,
        model,
        vocab: Sequence[str],
        labels: Sequence[str],
        do_lower_case: bool,
        max_seq_length: int,
        tokenizer: str = "core",
        strip_accents: bool | None = None,
        windows_per_model_call: int = WINDOWS_PER_MODEL_CALL,
        name=None,
    ):
        super().__init__(name=name)
        if windows_per_model_call < 1:
            raise ExportError(f"windows_per_model_call must be >= 1, got {windows_per_model_call}")
        if tokenizer not in TOKENIZERS:
            raise ExportError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        vocab, labels = list(vocab), list(labels)
        _check_vocab_and_length(vocab, model, max_seq_length, 3, "[CLS] word [SEP]")
        if len(labels) != model.num_labels:
            raise ExportError(f"{len(labels)} labels but the model predicts {model.num_labels}")
        # Only the model's underlying tf.Variables are tracked, not the Keras
        # model: tracking both makes the SavedModel hold each weight twice (the
        # Keras variable and its tf.Variable) under different shared names, and
        # TF1-style loaders (TF Serving, saved_model_cli run) then restore one
        # copy while the graph reads the other.
        self.model_variables = [v.value for v in model.variables]
        self._call_model = _model_caller(model)
        self.num_labels = int(model.num_labels)
        self.tokenizer_kind = tokenizer
        self.max_seq_length = int(max_seq_length)
        self._capacity = self.max_seq_length - 2
        self.windows_per_model_call = int(windows_per_model_call)
        self._cls_id = vocab.index("[CLS]")
        self._sep_id = vocab.index("[SEP]")
        if tokenizer == "core":
            self.tokenizer = CoreBertTokenizer(
                vocab, do_lower_case=do_lower_case, strip_accents=strip_accents
            )
        else:
            import tensorflow_text as tf_text  # pylint: disable=import-outside-toplevel

            self._tf_text_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocab), tf.range(len(vocab), dtype=tf.int64)
                ),
                default_value=-1,
            )
            self.tokenizer = tf_text.BertTokenizer(
                self._tf_text_table, lower_case=do_lower_case, token_out_type=tf.int32
            )
        self._labels = tf.constant(labels, tf.string)
        types = sorted({_split_tag(label)[1] for label in labels} | {"_"})
        self._types = tf.constant(types, tf.string)
        self._underscore_type = types.index("_")
        self._label_prefix = tf.constant(
            [_PREFIX_CODES.get(_split_tag(label)[0], _OTHER) for label in labels], tf.int32
        )
        self._label_type = tf.constant(
            [types.index(_split_tag(label)[1]) for label in labels], tf.int32
        )

    def _tokenize(self, texts):
        if self.tokenizer_kind == "core":
            return self.tokenizer.tokenize_with_offsets(texts)
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(texts)
        return tf.cast(ids, tf.int32), tf.cast(starts, tf.int64), tf.cast(ends, tf.int64)

    def _logits(self, input_ids, input_mask, segment_ids):
        return self._call_model(
            {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
        )

    def _windows_logits(self, window_ids):
        """Logits [windows, longest window, labels] of ragged [windows, (ids)].

        Windows are sorted by length and run `windows_per_model_call` at a
        time, each group padded only to its own longest window: a batch of
        short and long texts otherwise pays for padding every window to the
        longest (on WikiANN sentences, most of the model's work).  Windows are
        independent, so the grouping changes no result beyond float rounding.
        """
        lengths = window_ids.row_lengths()
        num_windows = tf.shape(lengths, out_type=tf.int64)[0]
        longest = tf.reduce_max(tf.concat([lengths, [0]], 0))
        order = tf.argsort(lengths, stable=True)
        group = tf.constant(self.windows_per_model_call, tf.int64)

        def run_group(start, logits):
            members = order[start : tf.minimum(start + group, num_windows)]
            rows = tf.gather(window_ids, members)
            input_ids = rows.to_tensor(default_value=0)
            group_logits = tf.cast(
                self._logits(
                    input_ids,
                    tf.ones_like(rows).to_tensor(default_value=0),
                    tf.zeros_like(input_ids),
                ),
                tf.float32,
            )
            group_logits = tf.pad(
                group_logits,
                [[0, 0], [0, longest - tf.shape(group_logits, out_type=tf.int64)[1]], [0, 0]],
            )
            return start + group, tf.tensor_scatter_nd_update(
                logits, members[:, tf.newaxis], group_logits
            )

        _, logits = tf.while_loop(
            lambda start, _: start < num_windows,
            run_group,
            (
                tf.constant(0, tf.int64),
                tf.zeros(
                    tf.stack([num_windows, longest, tf.cast(self.num_labels, tf.int64)]), tf.float32
                ),
            ),
        )
        return logits

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="input_ids"),
            tf.TensorSpec([None, None], tf.int32, name="input_mask"),
            tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
        ]
    )
    def predict_ids(self, input_ids, input_mask, segment_ids):
        return {"logits": self._logits(input_ids, input_mask, segment_ids)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])
    def serve(self, texts):
        return self._serve(texts)

    def _serve(self, texts):
        capacity = tf.constant(self._capacity, tf.int64)
        ids, starts, ends = self._tokenize(texts)  # [batch, (words), (pieces)]
        num_texts = tf.shape(texts, out_type=tf.int64)[0]
        word_pieces = ids.values  # [words, (pieces)]
        text_of_word = ids.value_rowids()
        num_words_total = tf.shape(text_of_word, out_type=tf.int64)[0]
        word_index = tf.range(num_words_total)
        text_first_word = tf.gather(ids.row_starts(), text_of_word)
        kept = tf.minimum(word_pieces.row_lengths(), capacity)
        word_start_byte = tf.gather(starts.flat_values, word_pieces.row_starts())
        word_end_byte = tf.gather(ends.flat_values, word_pieces.row_limits() - 1)

        # Greedy packing of words into windows, per text: a window takes words
        # while their (kept) pieces fit in max_seq_length - 2.
        cum = tf.cumsum(kept, exclusive=True)

        def pack_step(window, counter, start_cum):
            fits = (window < 0) & (cum + kept - tf.gather(start_cum, text_of_word) <= capacity)
            window = tf.where(fits, tf.gather(counter, text_of_word), window)
            start_cum = tf.math.unsorted_segment_min(
                tf.where(window < 0, cum, _INT64_MAX), text_of_word, num_texts
            )
            return window, counter + 1, start_cum

        window_in_text, _, _ = tf.while_loop(
            lambda window, counter, start_cum: tf.reduce_any(window < 0),
            pack_step,
            (
                tf.fill([num_words_total], tf.constant(-1, tf.int64)),
                tf.zeros([num_texts], tf.int64),
                tf.math.unsorted_segment_min(cum, text_of_word, num_texts),
            ),
        )
        windows_per_text = tf.maximum(
            tf.math.unsorted_segment_max(window_in_text, text_of_word, num_texts) + 1, 0
        )
        num_windows = tf.reduce_sum(windows_per_text)
        window = (
            tf.gather(tf.cumsum(windows_per_text, exclusive=True), text_of_word) + window_in_text
        )
        window_start = tf.math.unsorted_segment_min(cum, window, num_windows)
        position = 1 + cum - tf.gather(window_start, window)  # of each word's first piece

        piece_word = word_pieces.value_rowids()
        piece_in_word = tf.range(tf.size(piece_word, out_type=tf.int64)) - tf.gather(
            word_pieces.row_starts(), piece_word
        )
        keep_piece = piece_in_word < capacity
        window_pieces = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(word_pieces.flat_values, keep_piece),
            tf.boolean_mask(tf.gather(window, piece_word), keep_piece),
            nrows=num_windows,
        )
        window_ids = tf.concat(
            [
                tf.RaggedTensor.from_tensor(tf.fill([num_windows, 1], self._cls_id)),
                window_pieces,
                tf.RaggedTensor.from_tensor(tf.fill([num_windows, 1], self._sep_id)),
            ],
            axis=1,
        )
        logits = self._windows_logits(window_ids)
        word_probs = tf.gather_nd(tf.nn.softmax(logits, axis=-1), tf.stack([window, position], 1))
        label_ids = tf.argmax(word_probs, axis=-1, output_type=tf.int32)
        scores = tf.reduce_max(word_probs, axis=-1)

        # Entities, with conlleval's rules (metrics.get_entities) per text.
        prefix = tf.gather(self._label_prefix, label_ids)
        types = tf.gather(self._label_type, label_ids)
        is_first = tf.equal(word_index, text_first_word)
        is_last = tf.equal(word_index, tf.gather(ids.row_limits(), text_of_word) - 1)
        prev_prefix = tf.where(is_first, _O, _shift(prefix, _O, forward=True))
        prev_type = tf.where(is_first, -1, _shift(types, -1, forward=True))
        next_prefix = tf.where(is_last, _O, _shift(prefix, _O, forward=False))
        next_type = tf.where(is_last, self._underscore_type, _shift(types, -1, forward=False))
        starts_chunk = _chunk_starts(prev_prefix, prefix, prev_type, types)
        ends_chunk = _chunk_ends(prefix, next_prefix, types, next_type)
        start_positions = tf.where(starts_chunk)[:, 0]
        starts_so_far = tf.cumsum(tf.cast(starts_chunk, tf.int64))
        last_start = tf.gather(tf.concat([[-1], start_positions], 0), starts_so_far)
        chunk_start = tf.where(
            (starts_so_far > 0) & (last_start >= text_first_word), last_start, text_first_word
        )
        entity_last = tf.where(ends_chunk)[:, 0]
        entity_first = tf.gather(chunk_start, entity_last)
        entity_text = tf.gather(text_of_word, entity_last)
        entity_of_word = tf.repeat(
            tf.range(tf.size(entity_first, out_type=tf.int64)), entity_last - entity_first + 1
        )
        entity_scores = tf.math.unsorted_segment_mean(
            tf.gather(scores, tf.ragged.range(entity_first, entity_last + 1).flat_values),
            entity_of_word,
            tf.size(entity_first),
        )
        entity_start_byte = tf.gather(word_start_byte, entity_first)
        entity_end_byte = tf.gather(word_end_byte, entity_last)

        def per_text(values, rowids, default):
            return tf.RaggedTensor.from_value_rowids(values, rowids, nrows=num_texts).to_tensor(
                default_value=default
            )

        def per_word(values, default):
            return per_text(values, text_of_word, default)

        def per_entity(values, default):
            return per_text(values, entity_text, default)

        def as_int32(values):
            return tf.cast(values, tf.int32)

        def to_chars(byte_offsets):  # [batch, n] int64, -1 padded
            return _char_offsets(texts, byte_offsets)

        word_start_bytes = per_word(word_start_byte, -1)
        word_end_bytes = per_word(word_end_byte, -1)
        entity_start_bytes = per_entity(entity_start_byte, -1)
        entity_end_bytes = per_entity(entity_end_byte, -1)
        texts_of_words = tf.gather(texts, text_of_word)
        texts_of_entities = tf.gather(texts, entity_text)
        return {
            "num_words": as_int32(ids.row_lengths()),
            "num_windows": as_int32(windows_per_text),
            "tokens": per_word(
                tf.strings.substr(texts_of_words, word_start_byte, word_end_byte - word_start_byte),
                "",
            ),
            "labels": per_word(tf.gather(self._labels, label_ids), ""),
            "label_ids": per_word(label_ids, -1),
            "scores": per_word(scores, 0.0),
            "word_starts": to_chars(word_start_bytes),
            "word_ends": to_chars(word_end_bytes),
            "word_start_bytes": as_int32(word_start_bytes),
            "word_end_bytes": as_int32(word_end_bytes),
            "num_entities": as_int32(
                tf.RaggedTensor.from_value_rowids(
                    entity_last, entity_text, nrows=num_texts
                ).row_lengths()
            ),
            "entity_types": per_entity(tf.gather(self._types, tf.gather(types, entity_last)), ""),
            "entity_texts": per_entity(
                tf.strings.substr(
                    texts_of_entities, entity_start_byte, entity_end_byte - entity_start_byte
                ),
                "",
            ),
            "entity_scores": per_entity(entity_scores, 0.0),
            "entity_starts": to_chars(entity_start_bytes),
            "entity_ends": to_chars(entity_end_bytes),
            "entity_start_bytes": as_int32(entity_start_bytes),
            "entity_end_bytes": as_int32(entity_end_bytes),
            "entity_start_words": as_int32(
                per_entity(entity_first - tf.gather(text_first_word, entity_last), -1)
            ),
            "entity_end_words": as_int32(
                per_entity(entity_last + 1 - tf.gather(text_first_word, entity_last), -1)
            ),
        }


# ---------------------------------------------------------------------------
# Versioned, atomic writing
# ---------------------------------------------------------------------------


def existing_versions(export_dir: str) -> list:
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(export_dir)
        if name.isdigit() and os.path.isdir(os.path.join(export_dir, name))
    )


def resolve_version(export_dir: str, version: int | None, overwrite: bool) -> int:
    """The version to write: `version`, or one more than the highest existing one."""
    if version is None:
        return max(existing_versions(export_dir), default=0) + 1
    if version < 0:
        raise ExportError(f"version must be a non-negative integer, got {version}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise ExportError(
            f"{target} already exists; pass --overwrite to replace it, or leave "
            f"--version out to write version "
            f"{max(existing_versions(export_dir), default=0) + 1}"
        )
    return version


def warmup_requests(model_name: str, texts: Sequence[str] = WARMUP_TEXTS):
    """PredictionLog protos: one single-text request per text, then one batch of all."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # pylint: disable=import-outside-toplevel

    batches = [[t] for t in texts] + [list(texts)]
    logs = []
    for batch in batches:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_SIGNATURE)
        )
        request.inputs[INPUT_KEY].CopyFrom(
            tf.make_tensor_proto([t.encode("utf-8") for t in batch], dtype=tf.string)
        )
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return logs


def _write_version(export_dir: str, version: int | None, overwrite: bool, write_fn) -> str:
    os.makedirs(export_dir, exist_ok=True)
    version = resolve_version(export_dir, version, overwrite)
    target = os.path.join(export_dir, str(version))
    temp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        write_fn(temp)
        if os.path.exists(target):
            if not overwrite:  # appeared meanwhile (another export)
                raise ExportError(
                    f"{target} was written by someone else during this export; not overwriting it"
                )
            old = tempfile.mkdtemp(prefix=f".old-{version}-", dir=export_dir)
            os.rename(target, os.path.join(old, "previous"))
            os.rename(temp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(temp, target)
            except OSError as e:
                raise ExportError(f"could not move the export into {target}: {e}") from e
    finally:
        if os.path.exists(temp):
            shutil.rmtree(temp, ignore_errors=True)
    return target


def _save_server(server, path, vocab, labels, signatures, info, model_name, warmup=None):
    """tf.saved_model.save + assets (vocab, label map) + assets.extra (warm-up, info)."""
    with tempfile.TemporaryDirectory() as staging:
        vocab_path = os.path.join(staging, VOCAB_ASSET)
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write("".join(f"{token}\n" for token in vocab))
        labels_path = os.path.join(staging, LABEL_MAP_ASSET)
        with open(labels_path, "w", encoding="utf-8") as f:
            json.dump({"labels": list(labels or [])}, f, ensure_ascii=False, indent=1)
        server.vocab_file = tf.saved_model.Asset(vocab_path)
        server.label_map_file = tf.saved_model.Asset(labels_path)
        tf.saved_model.save(server, path, signatures=signatures)
    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
        for log in warmup if warmup is not None else warmup_requests(model_name):
            writer.write(log.SerializeToString())
    with open(os.path.join(extra, EXPORT_INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(
            {
                **info,
                "signatures": sorted(signatures),
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            f,
            indent=1,
            ensure_ascii=False,
        )


def export_token_classifier(
    model,
    vocab: Sequence[str],
    labels: Sequence[str],
    export_dir: str,
    *,
    do_lower_case: bool,
    max_seq_length: int,
    version: int | None = None,
    overwrite: bool = False,
    tokenizer: str = "core",
    strip_accents: bool | None = None,
    model_name: str | None = None,
    windows_per_model_call: int = WINDOWS_PER_MODEL_CALL,
) -> str:
    """Writes `<export_dir>/<version>` atomically and returns its path.

    `model` is a built ElectraForTokenClassification; `labels` its label names
    in id order.  `model_name` (for the warm-up requests) defaults to the
    export directory's name.  `windows_per_model_call`: windows of similar
    length run through the model together (see `_windows_logits`).
    """
    export_dir = os.path.abspath(export_dir)
    version = resolve_version(export_dir, version, overwrite)  # fail before any work
    server = TokenClassifierServer(
        model,
        vocab,
        labels,
        do_lower_case,
        max_seq_length,
        tokenizer=tokenizer,
        strip_accents=strip_accents,
        windows_per_model_call=windows_per_model_call,
    )
    model_name = model_name or os.path.basename(export_dir.rstrip("/"))
    info = {
        "task": "token_classification",
        "labels": list(labels),
        "tokenizer": tokenizer,
        "do_lower_case": bool(do_lower_case),
        "strip_accents": strip_accents,
        "max_seq_length": int(max_seq_length),
        "version": version,
        "windows_per_model_call": int(windows_per_model_call),
    }

    def write(path):
        signatures = {
            SERVING_SIGNATURE: server.serve.get_concrete_function(),
            IDS_SIGNATURE: server.predict_ids.get_concrete_function(),
        }
        _save_server(server, path, vocab, labels, signatures, info, model_name)

    return _write_version(export_dir, version, overwrite, write)


# ---------------------------------------------------------------------------
# Sentence (pair) classification and regression
# ---------------------------------------------------------------------------

PAIR_SIGNATURE = "classify_pairs"


def pair_lengths(len_a, len_b, budget):
    """Lengths glue.truncate_pair leaves (pop from the longer, b on ties), in closed form."""
    shorter = tf.minimum(len_a, len_b)
    fits = len_a + len_b <= budget
    keeps_shorter = 2 * shorter <= budget
    a = tf.where(
        fits,
        len_a,
        tf.where(keeps_shorter, tf.where(len_a > len_b, budget - len_b, len_a), (budget + 1) // 2),
    )
    b = tf.where(
        fits,
        len_b,
        tf.where(keeps_shorter, tf.where(len_a > len_b, len_b, budget - len_a), budget // 2),
    )
    return a, b


class SequenceClassifierServer(tf.Module):
    """Text (or text pair) -> label, scores: glue.encode_pairs' inputs, built in the graph.

    Inputs longer than max_seq_length are truncated as in fine-tuning (the
    text, or the longer of the pair, loses its last pieces); the `truncated`
    output says so for each example.
    """

    def __init__(
        self,
        model,
        vocab: Sequence[str],
        labels: Sequence[str] | None,
        do_lower_case: bool,
        max_seq_length: int,
        strip_accents: bool | None = None,
        name=None,
    ):
        super().__init__(name=name)
        vocab = list(vocab)
        _check_vocab_and_length(vocab, model, max_seq_length, 4, "[CLS] a [SEP] b [SEP]")
        self.is_regression = bool(model.is_regression)
        if not self.is_regression and (labels is None or len(labels) != model.num_labels):
            raise ExportError(f"{model.num_labels} classes need as many labels, got {labels}")
        self.model_variables = [v.value for v in model.variables]
        self._call_model = _model_caller(model)
        self.max_seq_length = int(max_seq_length)
        self._cls_id = vocab.index("[CLS]")
        self._sep_id = vocab.index("[SEP]")
        self.tokenizer = CoreBertTokenizer(
            vocab, do_lower_case=do_lower_case, strip_accents=strip_accents
        )
        if not self.is_regression:
            self._labels = tf.constant(list(labels), tf.string)

    def _pieces(self, texts):
        return self.tokenizer.tokenize(texts).merge_dims(1, 2)

    def _special(self, count, token):
        return tf.RaggedTensor.from_tensor(tf.fill([count, 1], token))

    def _predict(self, input_ids, segment_ids, truncated):
        # An empty batch still needs a [CLS] column for the head to read.
        width = [[0, 0], [0, 1 - tf.minimum(input_ids.bounding_shape(axis=1), 1)]]
        ids = tf.pad(input_ids.to_tensor(default_value=0), width)
        mask = tf.pad(tf.ones_like(input_ids).to_tensor(default_value=0), width)
        segments = tf.pad(segment_ids.to_tensor(default_value=0), width)
        logits = self._call_model({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
        outputs = {"truncated": truncated, "num_pieces": tf.cast(input_ids.row_lengths(), tf.int32)}
        if self.is_regression:
            outputs["scores"] = logits
            return outputs
        probabilities = tf.nn.softmax(logits, axis=-1)
        label_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        outputs.update(
            {
                "labels": tf.gather(self._labels, label_ids),
                "label_ids": label_ids,
                "scores": tf.reduce_max(probabilities, axis=-1),
                "probabilities": probabilities,
            }
        )
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])
    def serve(self, texts):
        pieces = self._pieces(texts)
        count = tf.shape(texts)[0]
        keep = tf.cast(self.max_seq_length - 2, tf.int64)
        kept = pieces[:, :keep]
        ids = tf.concat(
            [self._special(count, self._cls_id), kept, self._special(count, self._sep_id)], axis=1
        )
        return self._predict(ids, tf.zeros_like(ids), pieces.row_lengths() > keep)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="text_a"),
            tf.TensorSpec([None], tf.string, name="text_b"),
        ]
    )
    def serve_pairs(self, text_a, text_b):
        a, b = self._pieces(text_a), self._pieces(text_b)
        count = tf.shape(text_a)[0]
        total = a.row_lengths() + b.row_lengths()
        len_a, len_b = pair_lengths(
            a.row_lengths(), b.row_lengths(), tf.cast(self.max_seq_length - 3, tf.int64)
        )
        a = tf.ragged.boolean_mask(a, tf.ragged.range(a.row_lengths()) < len_a[:, tf.newaxis])
        b_kept = tf.ragged.boolean_mask(b, tf.ragged.range(b.row_lengths()) < len_b[:, tf.newaxis])
        cls, sep = self._special(count, self._cls_id), self._special(count, self._sep_id)
        first = tf.concat([cls, a, sep], axis=1)
        second = tf.concat([b_kept, sep], axis=1)
        ids = tf.concat([first, second], axis=1)
        segments = tf.concat([tf.zeros_like(first), tf.ones_like(second)], axis=1)
        return self._predict(ids, segments, len_a + len_b < total)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="input_ids"),
            tf.TensorSpec([None, None], tf.int32, name="input_mask"),
            tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
        ]
    )
    def predict_ids(self, input_ids, input_mask, segment_ids):
        return {
            "logits": self._call_model(
                {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
            )
        }


def export_sequence_classifier(
    model,
    vocab: Sequence[str],
    labels: Sequence[str] | None,
    export_dir: str,
    *,
    do_lower_case: bool,
    max_seq_length: int,
    version: int | None = None,
    overwrite: bool = False,
    strip_accents: bool | None = None,
    model_name: str | None = None,
) -> str:
    """Exports an ElectraForSequenceClassification (labels=None for regression).

    Signatures: serving_default (`texts` [batch] -> labels, label_ids, scores,
    probabilities, truncated, num_pieces; regression: scores = the predicted
    value), classify_pairs (`text_a`, `text_b` [batch], same outputs) and
    predict_ids (logits).  Tokenization is CoreBertTokenizer (core ops only).
    """
    export_dir = os.path.abspath(export_dir)
    version = resolve_version(export_dir, version, overwrite)
    server = SequenceClassifierServer(
        model, vocab, labels, do_lower_case, max_seq_length, strip_accents=strip_accents
    )
    model_name = model_name or os.path.basename(export_dir.rstrip("/"))
    info = {
        "task": "regression" if server.is_regression else "sequence_classification",
        "labels": list(labels or []),
        "tokenizer": "core",
        "do_lower_case": bool(do_lower_case),
        "strip_accents": strip_accents,
        "max_seq_length": int(max_seq_length),
        "version": version,
    }

    def write(path):
        signatures = {
            SERVING_SIGNATURE: server.serve.get_concrete_function(),
            PAIR_SIGNATURE: server.serve_pairs.get_concrete_function(),
            IDS_SIGNATURE: server.predict_ids.get_concrete_function(),
        }
        _save_server(server, path, vocab, labels, signatures, info, model_name)

    return _write_version(export_dir, version, overwrite, write)


# ---------------------------------------------------------------------------
# Question answering (SQuAD)
# ---------------------------------------------------------------------------


class QuestionAnsweringServer(tf.Module):
    """Question + context -> answer text, score and offsets, as squad.postprocess picks it.

    The context is split into windows of [CLS] question [SEP] context [SEP]
    every `doc_stride` pieces (squad.build_squad_features); the answer is the
    best start + end logit pair over all windows among each window's
    `n_best_size` top starts and ends, with end >= start, at most
    `max_answer_length` pieces, and the start in its best-context window.
    The answer is the input's text from the first piece's start to the last
    piece's end (byte exact; squad.postprocess maps piece text back onto
    whitespace words instead).
    """

    def __init__(
        self,
        model,
        vocab: Sequence[str],
        do_lower_case: bool,
        max_seq_length: int,
        doc_stride: int = 128,
        max_query_length: int = 64,
        n_best_size: int = 20,
        max_answer_length: int = 30,
        null_score_diff_threshold: float = 0.0,
        strip_accents: bool | None = None,
        name=None,
    ):
        super().__init__(name=name)
        vocab = list(vocab)
        _check_vocab_and_length(vocab, model, max_seq_length, 4, "[CLS] q [SEP] c [SEP]")
        if max_query_length + 3 >= max_seq_length:
            raise ExportError(
                f"max_query_length {max_query_length} leaves no room for the "
                f"context in max_seq_length {max_seq_length}"
            )
        self.model_variables = [v.value for v in model.variables]
        self._call_model = _model_caller(model)
        self.version_2 = bool(model.version_2)
        self.max_seq_length, self.doc_stride = int(max_seq_length), int(doc_stride)
        self.max_query_length, self.n_best_size = int(max_query_length), int(n_best_size)
        self.max_answer_length = int(max_answer_length)
        self.null_score_diff_threshold = float(null_score_diff_threshold)
        self._cls_id, self._sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
        self.tokenizer = CoreBertTokenizer(
            vocab, do_lower_case=do_lower_case, strip_accents=strip_accents
        )

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="question"),
            tf.TensorSpec([None], tf.string, name="context"),
        ]
    )
    def serve(self, question, context):
        num_examples = tf.shape(question, out_type=tf.int64)[0]
        tf.debugging.assert_equal(
            tf.shape(context, out_type=tf.int64)[0],
            num_examples,
            message="question and context need the same batch size",
        )
        query = self.tokenizer.tokenize(question).merge_dims(1, 2)[:, : self.max_query_length]
        doc_ids, doc_starts, doc_ends = self.tokenizer.tokenize_with_offsets(context)
        doc_ids, doc_starts, doc_ends = (
            r.merge_dims(1, 2) for r in (doc_ids, doc_starts, doc_ends)
        )
        query_length, doc_length = query.row_lengths(), doc_ids.row_lengths()
        max_doc = self.max_seq_length - query_length - 3
        step = tf.minimum(max_doc, self.doc_stride)
        num_windows = 1 + tf.maximum((doc_length - max_doc + step - 1) // step, 0)
        example = tf.repeat(tf.range(num_examples), num_windows)
        window_start = tf.ragged.range(num_windows).flat_values * tf.gather(step, example)
        window_length = tf.minimum(
            tf.gather(doc_length, example) - window_start, tf.gather(max_doc, example)
        )
        doc_position = tf.ragged.range(window_start, window_start + window_length)  # [W, (n)]
        global_piece = doc_position + tf.gather(doc_ids.row_starts(), example)[:, tf.newaxis]
        window_query = tf.gather(query, example)
        count = tf.shape(example)[0]
        cls = tf.RaggedTensor.from_tensor(tf.fill([count, 1], self._cls_id))
        sep = tf.RaggedTensor.from_tensor(tf.fill([count, 1], self._sep_id))
        first = tf.concat([cls, window_query, sep], axis=1)
        second = tf.concat([tf.gather(doc_ids.flat_values, global_piece), sep], axis=1)
        input_ids = tf.concat([first, second], axis=1)
        segments = tf.concat([tf.zeros_like(first), tf.ones_like(second)], axis=1)
        width = [[0, 0], [0, 1 - tf.minimum(input_ids.bounding_shape(axis=1), 1)]]
        ids = tf.pad(input_ids.to_tensor(default_value=0), width)
        outputs = self._call_model(
            {
                "input_ids": ids,
                "input_mask": tf.pad(tf.ones_like(input_ids).to_tensor(0), width),
                "segment_ids": tf.pad(segments.to_tensor(0), width),
            }
        )
        start_logits = tf.cast(outputs["start_logits"], tf.float64)
        end_logits = tf.cast(outputs["end_logits"], tf.float64)
        positions = tf.shape(ids, out_type=tf.int64)[1]

        # Best-context windows (squad._max_context), earliest window on ties.
        offset_in_window = doc_position - window_start[:, tf.newaxis]
        context_score = tf.cast(
            tf.minimum(offset_in_window, window_length[:, tf.newaxis] - 1 - offset_in_window),
            tf.float64,
        ) + 0.01 * tf.cast(window_length[:, tf.newaxis], tf.float64)
        flat_piece, flat_score = global_piece.flat_values, context_score.flat_values
        num_pieces = tf.size(doc_ids.flat_values, out_type=tf.int64)
        best_score = tf.math.unsorted_segment_max(flat_score, flat_piece, num_pieces)
        window_of_entry = global_piece.value_rowids()
        best_window = tf.math.unsorted_segment_min(
            tf.where(
                flat_score == tf.gather(best_score, flat_piece), window_of_entry, tf.int64.max
            ),
            flat_piece,
            num_pieces,
        )
        is_max_context = global_piece.with_flat_values(
            tf.equal(window_of_entry, tf.gather(best_window, flat_piece))
        )

        # Per window and input position: is it a context piece, in its best window?
        first_doc = tf.gather(query_length, example) + 2
        position_in_input = offset_in_window + first_doc[:, tf.newaxis]
        scatter_index = tf.stack([window_of_entry, position_in_input.flat_values], 1)
        shape = tf.stack([tf.cast(count, tf.int64), positions])
        is_context = tf.scatter_nd(scatter_index, tf.ones_like(flat_piece, tf.int32), shape) > 0
        max_context = (
            tf.scatter_nd(scatter_index, tf.cast(is_max_context.flat_values, tf.int32), shape) > 0
        )
        k = tf.minimum(self.n_best_size, tf.cast(positions, tf.int32))
        input_length = tf.cast(input_ids.row_lengths(), tf.int64)
        valid_position = tf.range(positions)[tf.newaxis, :] < input_length[:, tf.newaxis]

        def in_top(logits):
            logits = tf.where(valid_position, logits, -np.inf)
            top = tf.math.top_k(logits, k=k).indices
            hits = tf.reduce_sum(tf.one_hot(top, tf.cast(positions, tf.int32), dtype=tf.int32), 1)
            return hits > 0

        valid_start = is_context & max_context & in_top(start_logits)
        valid_end = is_context & in_top(end_logits)
        offsets = tf.range(positions)
        span = offsets[tf.newaxis, :] - offsets[:, tf.newaxis]  # end - start
        band = (span >= 0) & (span < self.max_answer_length)
        valid = valid_start[:, :, tf.newaxis] & valid_end[:, tf.newaxis, :] & band[tf.newaxis]
        pair_score = tf.where(
            valid, start_logits[:, :, tf.newaxis] + end_logits[:, tf.newaxis, :], -np.inf
        )
        flat_pairs = tf.reshape(pair_score, [count, -1])
        window_best = tf.reduce_max(flat_pairs, axis=1)
        window_pair = tf.argmax(flat_pairs, axis=1, output_type=tf.int64)
        # unsorted_segment_max starts from the dtype's lowest finite value, not -inf.
        has_answer = (
            tf.math.unsorted_segment_max(
                tf.cast(tf.math.is_finite(window_best), tf.int32), example, num_examples
            )
            > 0
        )
        example_best = tf.where(
            has_answer, tf.math.unsorted_segment_max(window_best, example, num_examples), -np.inf
        )
        chosen = tf.math.unsorted_segment_min(
            tf.where(
                tf.equal(window_best, tf.gather(example_best, example)),
                tf.range(tf.cast(count, tf.int64)),
                tf.int64.max,
            ),
            example,
            num_examples,
        )
        chosen = tf.where(has_answer, chosen, 0)
        pair = tf.gather(window_pair, chosen)
        start_position, end_position = pair // positions, pair % positions
        chosen_start = tf.gather(window_start, chosen)
        chosen_first_doc = tf.gather(first_doc, chosen)
        row_start = tf.gather(doc_ids.row_starts(), tf.range(num_examples))
        first_piece = row_start + chosen_start + start_position - chosen_first_doc
        last_piece = row_start + chosen_start + end_position - chosen_first_doc
        safe = lambda index: tf.where(has_answer, index, 0)  # noqa: E731
        padded_starts = tf.concat([doc_starts.flat_values, [-1]], 0)  # gathers from [] too
        padded_ends = tf.concat([doc_ends.flat_values, [-1]], 0)
        start_byte = tf.where(has_answer, tf.gather(padded_starts, safe(first_piece)), -1)
        end_byte = tf.where(has_answer, tf.gather(padded_ends, safe(last_piece)), -1)
        null_score = tf.math.unsorted_segment_min(
            start_logits[:, 0] + end_logits[:, 0], example, num_examples
        )
        null_score_diff = tf.where(has_answer, null_score - example_best, np.inf)
        answered = has_answer
        if self.version_2:
            answered &= null_score_diff <= self.null_score_diff_threshold
        answer = tf.where(
            answered,
            tf.strings.substr(context, tf.maximum(start_byte, 0), end_byte - start_byte),
            "",
        )

        def to_chars(byte_offsets):
            chars = _char_offsets(context, byte_offsets[:, tf.newaxis])[:, 0]
            return tf.where(answered, chars, -1)

        return {
            "answer": answer,
            "has_answer": answered,
            "score": tf.cast(tf.where(has_answer, example_best, 0.0), tf.float32),
            "null_score_diff": tf.cast(tf.where(has_answer, null_score_diff, 0.0), tf.float32),
            "answer_start": to_chars(start_byte),
            "answer_end": to_chars(end_byte),
            "answer_start_byte": tf.cast(tf.where(answered, start_byte, -1), tf.int32),
            "answer_end_byte": tf.cast(tf.where(answered, end_byte, -1), tf.int32),
            "num_windows": tf.cast(num_windows, tf.int32),
            # For checks against squad.postprocess: the chosen window and positions.
            "window_index": tf.cast(
                tf.where(
                    has_answer,
                    chosen
                    - tf.gather(tf.cumsum(num_windows, exclusive=True), tf.range(num_examples)),
                    -1,
                ),
                tf.int32,
            ),
            "start_position": tf.cast(tf.where(has_answer, start_position, -1), tf.int32),
            "end_position": tf.cast(tf.where(has_answer, end_position, -1), tf.int32),
        }

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="input_ids"),
            tf.TensorSpec([None, None], tf.int32, name="input_mask"),
            tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
        ]
    )
    def predict_ids(self, input_ids, input_mask, segment_ids):
        return self._call_model(
            {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
        )


def export_question_answering(
    model,
    vocab: Sequence[str],
    export_dir: str,
    *,
    do_lower_case: bool,
    max_seq_length: int,
    doc_stride: int = 128,
    max_query_length: int = 64,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version: int | None = None,
    overwrite: bool = False,
    model_name: str | None = None,
) -> str:
    """Exports an ElectraForQuestionAnswering: serving_default (question, context [batch]
    -> answer, score, offsets; SQuAD 2.0 models answer "" when the null score wins) and
    predict_ids (start/end logits)."""
    export_dir = os.path.abspath(export_dir)
    version = resolve_version(export_dir, version, overwrite)
    server = QuestionAnsweringServer(
        model,
        vocab,
        do_lower_case,
        max_seq_length,
        doc_stride,
        max_query_length,
        n_best_size,
        max_answer_length,
    )
    model_name = model_name or os.path.basename(export_dir.rstrip("/"))
    info = {
        "task": "question_answering",
        "version_2": server.version_2,
        "tokenizer": "core",
        "do_lower_case": bool(do_lower_case),
        "max_seq_length": int(max_seq_length),
        "doc_stride": int(doc_stride),
        "max_query_length": int(max_query_length),
        "n_best_size": int(n_best_size),
        "max_answer_length": int(max_answer_length),
        "version": version,
    }

    def write(path):
        signatures = {
            SERVING_SIGNATURE: server.serve.get_concrete_function(),
            IDS_SIGNATURE: server.predict_ids.get_concrete_function(),
        }
        _save_server(
            server,
            path,
            vocab,
            [],
            signatures,
            info,
            model_name,
            warmup=qa_warmup_requests(model_name),
        )

    return _write_version(export_dir, version, overwrite, write)


def qa_warmup_requests(model_name: str):
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # pylint: disable=import-outside-toplevel

    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_SIGNATURE)
    )
    request.inputs["question"].CopyFrom(
        tf.make_tensor_proto([b"Where was George Washington born?", b""], dtype=tf.string)
    )
    request.inputs["context"].CopyFrom(
        tf.make_tensor_proto([WARMUP_TEXTS[0].encode(), b""], dtype=tf.string)
    )
    return [
        prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    ]


# ---------------------------------------------------------------------------
# Loading a fine-tuned model
# ---------------------------------------------------------------------------

LABEL_MAP_FILES = ("label_map.json", "labels.json", "token_classification.json")
SETTINGS_FILES = ("finetuning_settings.json", "export_settings.json", "settings.json")


def _best_seed_dir(model_dir: str) -> str | None:
    seeds = sorted(glob.glob(os.path.join(model_dir, "seed_*")))
    seeds = [s for s in seeds if glob.glob(os.path.join(s, "best", "*.index"))]
    if not seeds:
        return None
    results = os.path.join(model_dir, "results.json")
    if os.path.exists(results):
        with open(results, encoding="utf-8") as f:
            scores = json.load(f).get("scores", {})
        ranked = sorted(
            (
                (score, seed)
                for seed, score in scores.items()
                if os.path.join(model_dir, f"seed_{seed}") in seeds
            ),
            key=lambda pair: -float(pair[0]),
        )
        if ranked:
            return os.path.join(model_dir, f"seed_{ranked[0][1]}")
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
            os.path.join(seed_dir, "best", "model"),
            [os.path.join(seed_dir, "best"), seed_dir, path],
        )
    if os.path.isdir(os.path.join(path, "best")):  # a seed_<s> folder
        prefix = tf.train.latest_checkpoint(os.path.join(path, "best")) or os.path.join(
            path, "best", "model"
        )
        return prefix, [os.path.join(path, "best"), path, os.path.dirname(path)]
    for name in ("model", "model.ckpt"):
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
    sources = {"checkpoint": prefix}
    wanted = [("config", config_file, ("config.json",)), ("vocab", vocab_file, ("vocab.txt",))]
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
    settings = {}
    if settings_path:
        with open(settings_path, encoding="utf-8") as f:
            settings = json.load(f)
        sources["settings"] = settings_path
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
