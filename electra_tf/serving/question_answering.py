"""The extractive question answerer's TF Serving module: question + context in, the answer text,
score and offsets out, picked as electra_tf.finetuning.squad.postprocess picks it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from electra_tf.serving import limits as limits_lib
from electra_tf.serving.common import (
    IDS_INPUT_SIGNATURE,
    IDS_SIGNATURE,
    SERVING_SIGNATURE,
    ExportError,
    char_offsets,
    check_vocab_and_length,
    model_caller,
)
from electra_tf.serving.core_wordpiece import CoreBertTokenizer
from electra_tf.serving.saving import write_export
from electra_tf.serving.versions import resolve_version
from electra_tf.serving.warmup import qa_warmup_requests

# Windows per model call: each group's [windows, positions, positions] pair scores (float64,
# 1.2 MB a window at max_seq_length 384) are all that is held at once.
WINDOWS_PER_MODEL_CALL = 8


class _Pieces(NamedTuple):
    """A tokenized batch of texts: ids and byte offsets, ragged [texts, (pieces)]."""

    ids: tf.RaggedTensor
    starts: tf.RaggedTensor
    ends: tf.RaggedTensor


class _Windows(NamedTuple):
    """The model inputs of a batch of questions, one row per window."""

    example: tf.Tensor  # [W]: the example each window belongs to
    num_windows: tf.Tensor  # [examples]
    window_start: tf.Tensor  # [W]: its first context piece, counted in the example's context
    window_length: tf.Tensor  # [W]: its context pieces
    doc_position: tf.RaggedTensor  # [W, (n)]: its context pieces in the example's context
    global_piece: tf.RaggedTensor  # [W, (n)]: the same, in the batch's flat pieces
    first_doc: tf.Tensor  # [W]: the input position of its first context piece
    input_ids: tf.RaggedTensor  # [W, (positions)]
    segment_ids: tf.RaggedTensor  # [W, (positions)]


def _is_max_context(windows, offset_in_window, doc_ids):
    """Ragged [W, (n)]: is the window the piece's best context (squad._max_context), the
    earliest window on ties."""
    context_score = tf.cast(
        tf.minimum(offset_in_window, windows.window_length[:, tf.newaxis] - 1 - offset_in_window),
        tf.float64,
    ) + 0.01 * tf.cast(windows.window_length[:, tf.newaxis], tf.float64)
    flat_piece, flat_score = windows.global_piece.flat_values, context_score.flat_values
    num_pieces = tf.size(doc_ids.flat_values, out_type=tf.int64)
    best_score = tf.math.unsorted_segment_max(flat_score, flat_piece, num_pieces)
    window_of_entry = windows.global_piece.value_rowids()
    best_window = tf.math.unsorted_segment_min(
        tf.where(flat_score == tf.gather(best_score, flat_piece), window_of_entry, tf.int64.max),
        flat_piece,
        num_pieces,
    )
    return windows.global_piece.with_flat_values(
        tf.equal(window_of_entry, tf.gather(best_window, flat_piece))
    )


def _choose_windows(example, window_best, num_examples):
    """Per example: has it a valid span, its best score, and the (earliest) window holding it."""
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
            tf.range(tf.cast(tf.shape(example)[0], tf.int64)),
            tf.int64.max,
        ),
        example,
        num_examples,
    )
    return has_answer, example_best, tf.where(has_answer, chosen, 0)


def _answer_bytes(windows, doc, has_answer, chosen, positions, num_examples):
    """The answer's first and last byte in the context (-1 without an answer)."""
    start_position, end_position = positions
    chosen_start = tf.gather(windows.window_start, chosen)
    chosen_first_doc = tf.gather(windows.first_doc, chosen)
    row_start = tf.gather(doc.ids.row_starts(), tf.range(num_examples))
    first_piece = row_start + chosen_start + start_position - chosen_first_doc
    last_piece = row_start + chosen_start + end_position - chosen_first_doc
    padded_starts = tf.concat([doc.starts.flat_values, [-1]], 0)  # gathers from [] too
    padded_ends = tf.concat([doc.ends.flat_values, [-1]], 0)
    start_byte = tf.where(
        has_answer, tf.gather(padded_starts, tf.where(has_answer, first_piece, 0)), -1
    )
    end_byte = tf.where(has_answer, tf.gather(padded_ends, tf.where(has_answer, last_piece, 0)), -1)
    return start_byte, end_byte


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
        limits: limits_lib.RequestLimits | None = None,
        windows_per_model_call: int = WINDOWS_PER_MODEL_CALL,
        name=None,
    ):
        super().__init__(name=name)
        vocab = list(vocab)
        check_vocab_and_length(vocab, model, max_seq_length, 4, "[CLS] q [SEP] c [SEP]")
        if windows_per_model_call < 1:
            raise ExportError(f"windows_per_model_call must be >= 1, got {windows_per_model_call}")
        self.windows_per_model_call = int(windows_per_model_call)
        self.limits = limits or limits_lib.RequestLimits()
        if max_query_length + 3 >= max_seq_length:
            raise ExportError(
                f"max_query_length {max_query_length} leaves no room for the "
                f"context in max_seq_length {max_seq_length}"
            )
        self.model_variables = [v.value for v in model.variables]
        self._call_model = model_caller(model)
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
        question = limits_lib.check_texts(
            question, self.limits, "question", self.limits.max_text_bytes, "max_text_bytes"
        )
        context = limits_lib.check_texts(
            context, self.limits, "context", self.limits.max_context_bytes, "max_context_bytes"
        )
        num_examples = tf.shape(question, out_type=tf.int64)[0]
        tf.debugging.assert_equal(
            tf.shape(context, out_type=tf.int64)[0],
            num_examples,
            message="question and context need the same batch size",
        )
        doc = _Pieces(*(r.merge_dims(1, 2) for r in self.tokenizer.tokenize_with_offsets(context)))
        windows = self._windows(question, doc.ids, num_examples)
        window_best, window_pair, window_null = self._window_scores(windows, doc.ids)
        positions = tf.constant(self.max_seq_length, tf.int64)
        has_answer, example_best, chosen = _choose_windows(
            windows.example, window_best, num_examples
        )
        pair = tf.gather(window_pair, chosen)
        start_position, end_position = pair // positions, pair % positions
        start_byte, end_byte = _answer_bytes(
            windows, doc, has_answer, chosen, (start_position, end_position), num_examples
        )
        null_score = tf.math.unsorted_segment_min(window_null, windows.example, num_examples)
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
            chars = char_offsets(context, byte_offsets[:, tf.newaxis])[:, 0]
            return tf.where(answered, chars, -1)

        def or_minus_one(values, condition):
            return tf.cast(tf.where(condition, values, -1), tf.int32)

        first_window = tf.gather(
            tf.cumsum(windows.num_windows, exclusive=True), tf.range(num_examples)
        )
        return {
            "answer": answer,
            "has_answer": answered,
            "score": tf.cast(tf.where(has_answer, example_best, 0.0), tf.float32),
            "null_score_diff": tf.cast(tf.where(has_answer, null_score_diff, 0.0), tf.float32),
            "answer_start": to_chars(start_byte),
            "answer_end": to_chars(end_byte),
            "answer_start_byte": or_minus_one(start_byte, answered),
            "answer_end_byte": or_minus_one(end_byte, answered),
            "num_windows": tf.cast(windows.num_windows, tf.int32),
            # For checks against squad.postprocess: the chosen window and positions.
            "window_index": or_minus_one(chosen - first_window, has_answer),
            "start_position": or_minus_one(start_position, has_answer),
            "end_position": or_minus_one(end_position, has_answer),
        }

    def _windows(self, question, doc_ids, num_examples):
        """[CLS] question [SEP] context window [SEP], a window every `doc_stride` pieces."""
        query = self.tokenizer.tokenize(question).merge_dims(1, 2)[:, : self.max_query_length]
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
        count = tf.shape(example)[0]
        cls = tf.RaggedTensor.from_tensor(tf.fill([count, 1], self._cls_id))
        sep = tf.RaggedTensor.from_tensor(tf.fill([count, 1], self._sep_id))
        first = tf.concat([cls, tf.gather(query, example), sep], axis=1)
        second = tf.concat([tf.gather(doc_ids.flat_values, global_piece), sep], axis=1)
        return _Windows(
            example=example,
            num_windows=num_windows,
            window_start=window_start,
            window_length=window_length,
            doc_position=doc_position,
            global_piece=global_piece,
            first_doc=tf.gather(query_length, example) + 2,
            input_ids=tf.concat([first, second], axis=1),
            segment_ids=tf.concat([tf.zeros_like(first), tf.ones_like(second)], axis=1),
        )

    def _window_scores(self, windows, doc_ids):
        """Per window: its best valid start + end logit (-inf if none), that pair as
        start * max_seq_length + end, and its null score (the [CLS] start + end logits).

        Windows run through the model `windows_per_model_call` at a time, each group
        padded to max_seq_length, and only the group's scores are kept: a long context
        costs memory for one group's [windows, positions, positions] pair scores, not all.
        """
        offset_in_window = windows.doc_position - windows.window_start[:, tf.newaxis]
        is_max_context = _is_max_context(windows, offset_in_window, doc_ids)
        position_in_input = offset_in_window + windows.first_doc[:, tf.newaxis]
        num_windows = tf.shape(windows.example, out_type=tf.int64)[0]
        group = tf.constant(self.windows_per_model_call, tf.int64)

        def run_group(start, best_array, pair_array, null_array):
            end = tf.minimum(start + group, num_windows)
            input_ids = windows.input_ids[start:end]
            start_logits, end_logits = self._group_logits(input_ids, windows.segment_ids[start:end])
            valid_start, valid_end = self._candidate_positions(
                position_in_input[start:end],
                is_max_context[start:end],
                input_ids.row_lengths(),
                start_logits,
                end_logits,
            )
            best, pair = self._best_pairs(start_logits, end_logits, valid_start, valid_end)
            index = tf.cast(start // group, tf.int32)
            return (
                end,
                best_array.write(index, best),
                pair_array.write(index, pair),
                null_array.write(index, start_logits[:, 0] + end_logits[:, 0]),
            )

        def scores_array(dtype):
            return tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=[None])

        _, best_array, pair_array, null_array = tf.while_loop(
            lambda start, *_: start < num_windows,
            run_group,
            (
                tf.constant(0, tf.int64),
                scores_array(tf.float64),
                scores_array(tf.int64),
                scores_array(tf.float64),
            ),
        )
        return best_array.concat(), pair_array.concat(), null_array.concat()

    def _group_logits(self, input_ids, segment_ids):
        """Start and end logits (float64) [windows, max_seq_length] of a group of windows."""
        width = [None, self.max_seq_length]
        outputs = self._call_model(
            {
                "input_ids": input_ids.to_tensor(default_value=0, shape=width),
                "input_mask": tf.ones_like(input_ids).to_tensor(default_value=0, shape=width),
                "segment_ids": segment_ids.to_tensor(default_value=0, shape=width),
            }
        )
        return (
            tf.cast(outputs["start_logits"], tf.float64),
            tf.cast(outputs["end_logits"], tf.float64),
        )

    def _candidate_positions(
        self, position_in_input, is_max_context, input_length, start_logits, end_logits
    ):
        """Per window and input position: may an answer start / end here?

        A start must be a context piece in its best-context window and among the window's
        `n_best_size` top start logits; an end a context piece among the top end logits.
        `position_in_input` / `is_max_context`: ragged [windows, (context pieces)].
        """
        positions = self.max_seq_length
        scatter_index = tf.stack(
            [position_in_input.value_rowids(), position_in_input.flat_values], 1
        )
        shape = tf.stack([position_in_input.nrows(), tf.constant(positions, tf.int64)])
        is_context = (
            tf.scatter_nd(scatter_index, tf.ones_like(position_in_input.flat_values), shape) > 0
        )
        max_context = (
            tf.scatter_nd(scatter_index, tf.cast(is_max_context.flat_values, tf.int64), shape) > 0
        )
        k = min(self.n_best_size, positions)
        valid_position = (
            tf.range(positions, dtype=tf.int64)[tf.newaxis, :]
            < tf.cast(input_length, tf.int64)[:, tf.newaxis]
        )

        def in_top(logits):
            logits = tf.where(valid_position, logits, -np.inf)
            top = tf.math.top_k(logits, k=k).indices
            hits = tf.reduce_sum(tf.one_hot(top, positions, dtype=tf.int32), 1)
            return hits > 0

        valid_start = is_context & max_context & in_top(start_logits)
        valid_end = is_context & in_top(end_logits)
        return valid_start, valid_end

    def _best_pairs(self, start_logits, end_logits, valid_start, valid_end):
        """Each window's best start + end logit over valid pairs (-inf if none), and the pair
        as start * max_seq_length + end."""
        offsets = tf.range(self.max_seq_length)
        span = offsets[tf.newaxis, :] - offsets[:, tf.newaxis]  # end - start
        band = (span >= 0) & (span < self.max_answer_length)
        valid = valid_start[:, :, tf.newaxis] & valid_end[:, tf.newaxis, :] & band[tf.newaxis]
        pair_score = tf.where(
            valid, start_logits[:, :, tf.newaxis] + end_logits[:, tf.newaxis, :], -np.inf
        )
        flat_pairs = tf.reshape(pair_score, [tf.shape(valid_start)[0], -1])
        return tf.reduce_max(flat_pairs, axis=1), tf.argmax(
            flat_pairs, axis=1, output_type=tf.int64
        )

    @tf.function(input_signature=IDS_INPUT_SIGNATURE)
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
    limits: limits_lib.RequestLimits | None = None,
) -> str:
    """Exports an ElectraForQuestionAnswering: serving_default (question, context [batch]
    -> answer, score, offsets; SQuAD 2.0 models answer "" when the null score wins) and
    predict_ids (start/end logits).  `limits`: what one request may hold (default
    `RequestLimits()`; max_text_bytes bounds a question, max_context_bytes a context)."""
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
        limits=limits,
    )
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
        labels=[],
        info=info,
        model_name=model_name,
        warmup_fn=qa_warmup_requests,
    )
