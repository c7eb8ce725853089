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
    reads them (an ill-formed sequence is one character).  A sentinel column on
    both sides keeps tf.searchsorted's internal reshapes well defined when every
    text, or every row of offsets, is empty.
    """
    _, char_starts = tf.strings.unicode_decode_with_offsets(
        texts, "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    char_starts = tf.cast(char_starts, tf.int64).to_tensor(default_value=INT64_MAX)
    sentinel = tf.fill([tf.shape(texts)[0], 1], tf.constant(INT64_MAX, tf.int64))
    chars = tf.searchsorted(
        tf.concat([char_starts, sentinel], 1),
        tf.concat([byte_offsets, sentinel], 1),
        side="left",
        out_type=tf.int32,
    )[:, :-1]
    return tf.where(byte_offsets < 0, -1, chars)
