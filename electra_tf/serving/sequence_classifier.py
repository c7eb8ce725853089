"""The sentence (pair) classifier's and regressor's TF Serving module: text or text pair in,
label, scores and probabilities (or the predicted value) out."""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from electra_tf.serving import limits as limits_lib
from electra_tf.serving.common import (
    IDS_INPUT_SIGNATURE,
    IDS_SIGNATURE,
    INPUT_KEY,
    SERVING_SIGNATURE,
    ExportError,
    check_vocab_and_length,
    model_caller,
)
from electra_tf.serving.core_wordpiece import CoreBertTokenizer
from electra_tf.serving.saving import write_export
from electra_tf.serving.versions import resolve_version

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
        limits: limits_lib.RequestLimits | None = None,
        name=None,
    ):
        super().__init__(name=name)
        vocab = list(vocab)
        check_vocab_and_length(vocab, model, max_seq_length, 4, "[CLS] a [SEP] b [SEP]")
        self.limits = limits or limits_lib.RequestLimits()
        self.is_regression = bool(model.is_regression)
        if not self.is_regression and (labels is None or len(labels) != model.num_labels):
            raise ExportError(f"{model.num_labels} classes need as many labels, got {labels}")
        self.model_variables = [v.value for v in model.variables]
        self._call_model = model_caller(model)
        self.max_seq_length = int(max_seq_length)
        self._cls_id = vocab.index("[CLS]")
        self._sep_id = vocab.index("[SEP]")
        self.tokenizer = CoreBertTokenizer(
            vocab, do_lower_case=do_lower_case, strip_accents=strip_accents
        )
        if not self.is_regression:
            self._labels = tf.constant(list(labels), tf.string)

    def _pieces(self, texts, input_name):
        texts = limits_lib.check_texts(
            texts, self.limits, input_name, self.limits.max_text_bytes, "max_text_bytes"
        )
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
        pieces = self._pieces(texts, INPUT_KEY)
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
        a, b = self._pieces(text_a, "text_a"), self._pieces(text_b, "text_b")
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

    @tf.function(input_signature=IDS_INPUT_SIGNATURE)
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
    limits: limits_lib.RequestLimits | None = None,
) -> str:
    """Exports an ElectraForSequenceClassification (labels=None for regression).

    Signatures: serving_default (`texts` [batch] -> labels, label_ids, scores,
    probabilities, truncated, num_pieces; regression: scores = the predicted
    value), classify_pairs (`text_a`, `text_b` [batch], same outputs) and
    predict_ids (logits).  Tokenization is CoreBertTokenizer (core ops only).  `limits`: what
    one request may hold (default `RequestLimits()`).
    """
    export_dir = os.path.abspath(export_dir)
    version = resolve_version(export_dir, version, overwrite)
    server = SequenceClassifierServer(
        model,
        vocab,
        labels,
        do_lower_case,
        max_seq_length,
        strip_accents=strip_accents,
        limits=limits,
    )
    info = {
        "task": "regression" if server.is_regression else "sequence_classification",
        "labels": list(labels or []),
        "tokenizer": "core",
        "do_lower_case": bool(do_lower_case),
        "strip_accents": strip_accents,
        "max_seq_length": int(max_seq_length),
        "version": version,
        "limits": server.limits.as_dict(),
    }

    return write_export(
        server,
        export_dir,
        version,
        overwrite,
        signatures={
            SERVING_SIGNATURE: server.serve,
            PAIR_SIGNATURE: server.serve_pairs,
            IDS_SIGNATURE: server.predict_ids,
        },
        vocab=vocab,
        labels=labels,
        info=info,
        model_name=model_name,
    )
