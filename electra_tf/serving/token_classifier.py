"""The token classifier's TF Serving module: raw text -> words, labels, scores, offsets and
entities in one graph (see electra_tf.serving.export for the signatures it writes)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from electra_tf.serving import entity_decoding
from electra_tf.serving import limits as limits_lib
from electra_tf.serving.common import (
    IDS_INPUT_SIGNATURE,
    IDS_SIGNATURE,
    INPUT_KEY,
    SERVING_SIGNATURE,
    ExportError,
    char_offsets,
    check_vocab_and_length,
    model_caller,
)
from electra_tf.serving.core_wordpiece import CoreBertTokenizer
from electra_tf.serving.saving import write_export
from electra_tf.serving.versions import resolve_version

TOKENIZERS = ("core", "tensorflow_text")
# Windows per model call in the token classifier's graph (sorted by length first): a few
# per call keeps padding low; measured in bench/RESULTS.md (serving).
WINDOWS_PER_MODEL_CALL = 8


def _as_int32(values):
    return tf.cast(values, tf.int32)


def _per_text(values, rowids, num_texts, default):
    """Flat per-word / per-entity values as a dense [texts, max count] tensor padded with default."""
    return tf.RaggedTensor.from_value_rowids(values, rowids, nrows=num_texts).to_tensor(
        default_value=default
    )


def _spans(texts, start_bytes, end_bytes):
    """[texts, n] substrings of each text ("" where the start is -1).

    tf.strings.substr broadcasts each text over its row without copying it; gathering the
    text once per span instead costs spans x text bytes.
    """
    return tf.strings.substr(
        texts[:, tf.newaxis], tf.maximum(start_bytes, 0), tf.maximum(end_bytes - start_bytes, 0)
    )


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
        limits: limits_lib.RequestLimits | None = None,
        name=None,
    ):
        super().__init__(name=name)
        if windows_per_model_call < 1:
            raise ExportError(f"windows_per_model_call must be >= 1, got {windows_per_model_call}")
        if tokenizer not in TOKENIZERS:
            raise ExportError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        vocab, labels = list(vocab), list(labels)
        check_vocab_and_length(vocab, model, max_seq_length, 3, "[CLS] word [SEP]")
        if len(labels) != model.num_labels:
            raise ExportError(f"{len(labels)} labels but the model predicts {model.num_labels}")
        # Only the model's underlying tf.Variables are tracked, not the Keras
        # model: tracking both makes the SavedModel hold each weight twice (the
        # Keras variable and its tf.Variable) under different shared names, and
        # TF1-style loaders (TF Serving, saved_model_cli run) then restore one
        # copy while the graph reads the other.
        self.model_variables = [v.value for v in model.variables]
        self._call_model = model_caller(model)
        self.num_labels = int(model.num_labels)
        self.tokenizer_kind = tokenizer
        self.max_seq_length = int(max_seq_length)
        self._capacity = self.max_seq_length - 2
        self.windows_per_model_call = int(windows_per_model_call)
        self.limits = limits or limits_lib.RequestLimits()
        self._cls_id = vocab.index("[CLS]")
        self._sep_id = vocab.index("[SEP]")
        self._build_tokenizer(vocab, do_lower_case, strip_accents)
        self._labels = tf.constant(labels, tf.string)
        self.entity_tables = entity_decoding.EntityTables(labels)

    def _build_tokenizer(self, vocab, do_lower_case, strip_accents):
        if self.tokenizer_kind == "core":
            self.tokenizer = CoreBertTokenizer(
                vocab, do_lower_case=do_lower_case, strip_accents=strip_accents
            )
            return
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
        """Logits [windows, max_seq_length, labels] of ragged [windows, (ids)].

        Windows are sorted by length and run `windows_per_model_call` at a
        time, each group padded only to its own longest window: a batch of
        short and long texts otherwise pays for padding every window to the
        longest (on WikiANN sentences, most of the model's work).  Windows are
        independent, so the grouping changes no result beyond float rounding.
        Each group's logits go to a TensorArray and are put in window order by
        one scatter at the end: time and memory stay linear in the windows.
        """
        lengths = window_ids.row_lengths()
        num_windows = tf.shape(lengths, out_type=tf.int64)[0]
        order = tf.cast(tf.argsort(lengths, stable=True), tf.int64)
        group = tf.constant(self.windows_per_model_call, tf.int64)
        num_groups = (num_windows + group - 1) // group

        def run_group(index, members_array, logits_array):
            start = index * group
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
                [[0, 0], [0, self.max_seq_length - tf.shape(group_logits)[1]], [0, 0]],
            )
            return (
                index + 1,
                members_array.write(tf.cast(index, tf.int32), members),
                logits_array.write(tf.cast(index, tf.int32), group_logits),
            )

        _, members_array, logits_array = tf.while_loop(
            lambda index, *_: index < num_groups,
            run_group,
            (
                tf.constant(0, tf.int64),
                tf.TensorArray(tf.int64, size=0, dynamic_size=True, element_shape=[None]),
                tf.TensorArray(
                    tf.float32,
                    size=0,
                    dynamic_size=True,
                    element_shape=[None, self.max_seq_length, self.num_labels],
                ),
            ),
        )
        return tf.scatter_nd(
            members_array.concat()[:, tf.newaxis],
            logits_array.concat(),
            tf.stack(
                [
                    num_windows,
                    tf.constant(self.max_seq_length, tf.int64),
                    tf.constant(self.num_labels, tf.int64),
                ]
            ),
        )

    @tf.function(input_signature=IDS_INPUT_SIGNATURE)
    def predict_ids(self, input_ids, input_mask, segment_ids):
        return {"logits": self._logits(input_ids, input_mask, segment_ids)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])
    def serve(self, texts):
        texts = limits_lib.check_texts(
            texts, self.limits, INPUT_KEY, self.limits.max_text_bytes, "max_text_bytes"
        )
        ids, starts, ends = self._tokenize(texts)  # [batch, (words), (pieces)]
        word_pieces = ids.values  # [words, (pieces)]
        text_of_word = ids.value_rowids()
        window, position, windows_per_text = self._pack_windows(
            word_pieces, text_of_word, ids.row_splits
        )
        window_ids = self._window_ids(word_pieces, window, tf.reduce_sum(windows_per_text))
        logits = self._windows_logits(window_ids)
        word_probs = tf.gather_nd(tf.nn.softmax(logits, axis=-1), tf.stack([window, position], 1))
        label_ids = tf.argmax(word_probs, axis=-1, output_type=tf.int32)
        scores = tf.reduce_max(word_probs, axis=-1)

        word_index = tf.range(tf.shape(text_of_word, out_type=tf.int64)[0])
        text_first_word = tf.gather(ids.row_starts(), text_of_word)
        entities = entity_decoding.decode_entities(
            self.entity_tables,
            label_ids,
            scores,
            is_first=tf.equal(word_index, text_first_word),
            is_last=tf.equal(word_index, tf.gather(ids.row_limits(), text_of_word) - 1),
            text_first_word=text_first_word,
        )
        word_bytes = (
            tf.gather(starts.flat_values, word_pieces.row_starts()),
            tf.gather(ends.flat_values, word_pieces.row_limits() - 1),
        )
        return {
            "num_words": _as_int32(ids.row_lengths()),
            "num_windows": _as_int32(windows_per_text),
            **self._word_outputs(texts, text_of_word, word_bytes, label_ids, scores),
            **self._entity_outputs(texts, text_of_word, text_first_word, word_bytes, entities),
        }

    def _pack_windows(self, word_pieces, text_of_word, word_row_splits):
        """Greedy packing of words into windows, per text: a window takes words while their
        (kept) pieces fit in max_seq_length - 2.

        Each word's successor window start (the first later word that does not fit beside
        it) is one binary search over the words; the loop then only walks each text's chain
        of window starts, touching one word per text per step, so the cost is linear in the
        words (not windows x words).  Returns each word's window (numbered over the batch),
        the position of its first piece in that window, and the number of windows of each
        text.
        """
        capacity = tf.constant(self._capacity, tf.int64)
        kept = tf.minimum(word_pieces.row_lengths(), capacity)
        cum = tf.cumsum(kept, exclusive=True)
        num_words = tf.shape(kept, out_type=tf.int64)[0]
        text_limit = tf.gather(word_row_splits[1:], text_of_word)
        # A word's pieces never exceed the capacity, so its successor lies after it.
        next_start = tf.minimum(
            tf.searchsorted(cum + kept, cum + capacity, side="right", out_type=tf.int64),
            text_limit,
        )
        next_start = tf.concat([next_start, [num_words]], 0)  # gathered from done texts

        def walk(start, starts_array, step):
            active = start < word_row_splits[1:]
            return (
                tf.gather(next_start, start),
                starts_array.write(step, tf.boolean_mask(start, active)),
                step + 1,
            )

        _, starts_array, _ = tf.while_loop(
            lambda start, *_: tf.reduce_any(start < word_row_splits[1:]),
            walk,
            (
                word_row_splits[:-1],
                tf.TensorArray(tf.int64, size=0, dynamic_size=True, element_shape=[None]),
                tf.constant(0, tf.int32),
            ),
        )
        window_starts = starts_array.concat()
        is_start = tf.scatter_nd(
            window_starts[:, tf.newaxis],
            tf.ones_like(window_starts),
            num_words[tf.newaxis],
        )
        window = tf.cumsum(is_start) - 1
        windows_per_text = tf.math.unsorted_segment_sum(
            is_start, text_of_word, tf.shape(word_row_splits, out_type=tf.int64)[0] - 1
        )
        position = 1 + cum - tf.gather(cum, tf.gather(tf.sort(window_starts), window))
        return window, position, windows_per_text

    def _window_ids(self, word_pieces, window, num_windows):
        """Ragged [windows, (ids)]: [CLS], the window's words' kept pieces, [SEP]."""
        piece_word = word_pieces.value_rowids()
        piece_in_word = tf.range(tf.size(piece_word, out_type=tf.int64)) - tf.gather(
            word_pieces.row_starts(), piece_word
        )
        keep_piece = piece_in_word < tf.constant(self._capacity, tf.int64)
        window_pieces = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(word_pieces.flat_values, keep_piece),
            tf.boolean_mask(tf.gather(window, piece_word), keep_piece),
            nrows=num_windows,
        )
        return tf.concat(
            [
                tf.RaggedTensor.from_tensor(tf.fill([num_windows, 1], self._cls_id)),
                window_pieces,
                tf.RaggedTensor.from_tensor(tf.fill([num_windows, 1], self._sep_id)),
            ],
            axis=1,
        )

    def _word_outputs(self, texts, text_of_word, word_bytes, label_ids, scores):
        num_texts = tf.shape(texts, out_type=tf.int64)[0]

        def per_word(values, default):
            return _per_text(values, text_of_word, num_texts, default)

        word_start_byte, word_end_byte = word_bytes
        word_start_bytes = per_word(word_start_byte, -1)
        word_end_bytes = per_word(word_end_byte, -1)
        return {
            "tokens": _spans(texts, word_start_bytes, word_end_bytes),
            "labels": per_word(tf.gather(self._labels, label_ids), ""),
            "label_ids": per_word(label_ids, -1),
            "scores": per_word(scores, 0.0),
            "word_starts": char_offsets(texts, word_start_bytes),
            "word_ends": char_offsets(texts, word_end_bytes),
            "word_start_bytes": _as_int32(word_start_bytes),
            "word_end_bytes": _as_int32(word_end_bytes),
        }

    def _entity_outputs(self, texts, text_of_word, text_first_word, word_bytes, entities):
        num_texts = tf.shape(texts, out_type=tf.int64)[0]
        entity_first, entity_last, entity_type, entity_scores = entities
        entity_text = tf.gather(text_of_word, entity_last)

        def per_entity(values, default):
            return _per_text(values, entity_text, num_texts, default)

        entity_start_byte = tf.gather(word_bytes[0], entity_first)
        entity_end_byte = tf.gather(word_bytes[1], entity_last)
        entity_start_bytes = per_entity(entity_start_byte, -1)
        entity_end_bytes = per_entity(entity_end_byte, -1)
        first_word_of_text = tf.gather(text_first_word, entity_last)
        return {
            "num_entities": _as_int32(
                tf.RaggedTensor.from_value_rowids(
                    entity_last, entity_text, nrows=num_texts
                ).row_lengths()
            ),
            "entity_types": per_entity(tf.gather(self.entity_tables.types, entity_type), ""),
            "entity_texts": _spans(texts, entity_start_bytes, entity_end_bytes),
            "entity_scores": per_entity(entity_scores, 0.0),
            "entity_starts": char_offsets(texts, entity_start_bytes),
            "entity_ends": char_offsets(texts, entity_end_bytes),
            "entity_start_bytes": _as_int32(entity_start_bytes),
            "entity_end_bytes": _as_int32(entity_end_bytes),
            "entity_start_words": _as_int32(per_entity(entity_first - first_word_of_text, -1)),
            "entity_end_words": _as_int32(per_entity(entity_last + 1 - first_word_of_text, -1)),
        }


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
    limits: limits_lib.RequestLimits | None = None,
) -> str:
    """Writes `<export_dir>/<version>` atomically and returns its path.

    `model` is a built ElectraForTokenClassification; `labels` its label names
    in id order.  `model_name` (for the warm-up requests) defaults to the
    export directory's name.  `windows_per_model_call`: windows of similar
    length run through the model together (see `_windows_logits`).  `limits`:
    what one request may hold (default `RequestLimits()`), stored in the graph.
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
        limits=limits,
    )
    info = {
        "task": "token_classification",
        "labels": list(labels),
        "tokenizer": tokenizer,
        "do_lower_case": bool(do_lower_case),
        "strip_accents": strip_accents,
        "max_seq_length": int(max_seq_length),
        "version": version,
        "windows_per_model_call": int(windows_per_model_call),
        "limits": server.limits.as_dict(),
    }

    return write_export(
        server,
        export_dir,
        version,
        overwrite,
        signatures={
            SERVING_SIGNATURE: server.serve,
            IDS_SIGNATURE: server.predict_ids,
        },
        vocab=vocab,
        labels=labels,
        info=info,
        model_name=model_name,
    )
