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

This module is the serving package's public face; each concern lives in its own module:
``common`` (names, checks), ``token_classifier`` / ``sequence_classifier`` /
``question_answering`` (one server module each), ``entity_decoding`` (BIO / BIOES chunking),
``versions`` (version folders), ``saving`` (SavedModel + assets), ``warmup`` (warm-up
requests) and ``checkpoints`` (finding and loading a fine-tuned model).
"""

from __future__ import annotations

from electra_tf.serving.checkpoints import (
    TASKS,
    load_finetuned,
    load_token_classifier,
    read_labels,
    resolve_checkpoint,
)
from electra_tf.serving.common import (
    IDS_SIGNATURE,
    INPUT_KEY,
    SERVING_SIGNATURE,
    ExportError,
)
from electra_tf.serving.question_answering import (
    QuestionAnsweringServer,
    export_question_answering,
)
from electra_tf.serving.sequence_classifier import (
    PAIR_SIGNATURE,
    SequenceClassifierServer,
    export_sequence_classifier,
)
from electra_tf.serving.token_classifier import (
    TOKENIZERS,
    WINDOWS_PER_MODEL_CALL,
    TokenClassifierServer,
    export_token_classifier,
)
from electra_tf.serving.versions import existing_versions, resolve_version
from electra_tf.serving.warmup import WARMUP_TEXTS, qa_warmup_requests, warmup_requests

__all__ = [
    "IDS_SIGNATURE",
    "INPUT_KEY",
    "PAIR_SIGNATURE",
    "SERVING_SIGNATURE",
    "TASKS",
    "TOKENIZERS",
    "WARMUP_TEXTS",
    "WINDOWS_PER_MODEL_CALL",
    "ExportError",
    "QuestionAnsweringServer",
    "SequenceClassifierServer",
    "TokenClassifierServer",
    "existing_versions",
    "export_question_answering",
    "export_sequence_classifier",
    "export_token_classifier",
    "load_finetuned",
    "load_token_classifier",
    "qa_warmup_requests",
    "read_labels",
    "resolve_checkpoint",
    "resolve_version",
    "warmup_requests",
]
