"""What every exported server shares: signature names, the pre-trace checks, the model
call the signatures trace, and byte-to-character offsets."""

from __future__ import annotations

import tensorflow as tf

SERVING_SIGNATURE = "serving_default"
IDS_SIGNATURE = "predict_ids"
INPUT_KEY = "texts"
# The predict_ids signature's inputs, the same for every server.
IDS_INPUT_SIGNATURE = [
    tf.TensorSpec([None, None], tf.int32, name="input_ids"),
    tf.TensorSpec([None, None], tf.int32, name="input_mask"),
    tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
]
INT64_MAX = tf.int64.max


class ExportError(ValueError):
    """An export cannot be written (existing version, bad inputs); the message says why."""


def check_vocab_and_length(vocab, model, max_seq_length, minimum, layout):
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


def model_caller(model):
    """model(features) as a plain function, which tf.Module does not track."""

    def call(features):
        return model(features, training=False)

    return call


def char_offsets(texts, byte_offsets):
    """Characters of each text before each byte offset ([batch, n] int64; -1 stays -1).

    Characters are code points as tf.strings.unicode_decode(errors="replace")
    reads them (an ill-formed sequence is one character).  The texts' character
    starts are searched as one flat sorted sequence (each text's shifted by the
    bytes of the texts before it), so memory stays linear in the request's bytes
    however unequal the texts' lengths.  A sentinel on both sides keeps
    tf.searchsorted's reshapes defined when there are no characters or offsets.
    """
    _, char_starts = tf.strings.unicode_decode_with_offsets(
        texts, "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    text_base = tf.cumsum(tf.cast(tf.strings.length(texts), tf.int64), exclusive=True)
    flat_starts = char_starts.flat_values + tf.gather(text_base, char_starts.value_rowids())
    sentinel = tf.constant([INT64_MAX], tf.int64)
    flat_offsets = tf.reshape(byte_offsets + text_base[:, tf.newaxis], [-1])
    chars_before = tf.searchsorted(
        tf.concat([flat_starts, sentinel], 0)[tf.newaxis],
        tf.concat([flat_offsets, sentinel], 0)[tf.newaxis],
        side="left",
        out_type=tf.int64,
    )[0, :-1]
    chars = (
        tf.reshape(chars_before, tf.shape(byte_offsets, out_type=tf.int64))
        - (char_starts.row_starts()[:, tf.newaxis])
    )
    return tf.where(byte_offsets < 0, -1, tf.cast(chars, tf.int32))
