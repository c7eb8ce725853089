"""Exports a fine-tuned ELECTRA model (NER by default) for TensorFlow Serving.

    python -m electra_tf.export_saved_model --checkpoint=runs/ner \
        --export_dir=export/models/ner [--version=N] [--overwrite] \
        [--tokenizer=core|tensorflow_text] [--task=token_classification|classification|regression|squad|squadv2]

--checkpoint is a run_finetuning --model_dir (the best seed by results.json is
taken), one seed_<s> folder, a folder holding model.index / model.ckpt.index
(also convert's token-classifier folders), or a checkpoint prefix.  config.json,
vocab.txt and label_map.json (or labels.json / token_classification.json) are
looked for beside the checkpoint and in its parent folders; the --config_file,
--vocab_file and --label_map flags name them explicitly.  max_seq_length and
do_lower_case come from a finetuning_settings.json found the same way, else
from the flags.

Writes <export_dir>/<version>/ (TF Serving's layout) atomically; the version
defaults to one more than the highest existing one, and an existing version is
only replaced with --overwrite.  See electra_tf/serving/export.py for the
signatures and export/README.md for serving it.  The flags are the arguments
of electra_tf.export, which a Python caller can use directly.
"""

import sys

from absl import app, flags

import electra_tf  # noqa: F401  (selects the Keras backend before keras loads)
from electra_tf.serving import limits

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "checkpoint",
    None,
    "Fine-tuned model: run_finetuning --model_dir, a "
    "seed_<s> folder, a folder with model.index, or a checkpoint prefix.",
)
flags.DEFINE_string(
    "export_dir", None, "Model base folder (export/models/ner); versions are written below it."
)
flags.DEFINE_integer("version", None, "Version number (default: next integer).")
flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace an existing version; also needed to write into an --export_dir that holds "
    "anything but version folders.",
)
flags.DEFINE_enum(
    "tokenizer",
    "core",
    ["core", "tensorflow_text"],
    "core: CoreBertTokenizer, core TF ops only (stock TF Serving); "
    "tensorflow_text: needs a server built with tensorflow-text ops.",
)
flags.DEFINE_enum(
    "task",
    "token_classification",
    ["token_classification", "classification", "regression", "squad", "squadv2"],
    "Model kind: token_classification (NER, the default), a sentence (pair) "
    "classifier / regressor (GLUE-style tasks), or a SQuAD 1.1 / 2.0 reader.",
)
flags.DEFINE_integer(
    "doc_stride", None, "QA: stride between context windows (default: settings, else 128)."
)
flags.DEFINE_integer(
    "max_query_length", None, "QA: question pieces kept (default: settings, else 64)."
)
flags.DEFINE_integer(
    "max_answer_length", None, "QA: longest answer in pieces (default: settings, else 30)."
)
flags.DEFINE_string(
    "config_file", None, "ElectraConfig JSON (default: config.json found beside the checkpoint)."
)
flags.DEFINE_string("vocab_file", None, "Vocabulary (default: vocab.txt beside the checkpoint).")
flags.DEFINE_string(
    "label_map",
    None,
    'Label map JSON ({"labels": [...]}, default: label_map.json beside the checkpoint).',
)
flags.DEFINE_integer(
    "max_seq_length",
    None,
    "Window length in wordpieces (default: the fine-tuning settings' value, else 128).",
)
flags.DEFINE_bool(
    "do_lower_case", None, "Lower-case input (default: the fine-tuning settings' value, else True)."
)
flags.DEFINE_string(
    "model_name", None, "Model name in the warm-up requests (default: the export_dir's base name)."
)
flags.DEFINE_integer(
    "max_texts",
    limits.DEFAULT_MAX_TEXTS,
    "Request limit: texts (QA: question/context pairs) in one request.",
)
flags.DEFINE_integer(
    "max_text_bytes",
    limits.DEFAULT_MAX_TEXT_BYTES,
    "Request limit: UTF-8 bytes of one text (QA: of one question).",
)
flags.DEFINE_integer(
    "max_request_bytes",
    limits.DEFAULT_MAX_REQUEST_BYTES,
    "Request limit: texts x the longest text's bytes (the padded size of the outputs).",
)
flags.DEFINE_integer(
    "max_context_bytes",
    limits.DEFAULT_MAX_CONTEXT_BYTES,
    "Request limit, QA only: UTF-8 bytes of one context.",
)


# Flags passed to electra_tf.export under their own names.
_EXPORT_ARGUMENTS = (
    "task",
    "version",
    "overwrite",
    "tokenizer",
    "max_seq_length",
    "do_lower_case",
    "doc_stride",
    "max_query_length",
    "max_answer_length",
    "config_file",
    "vocab_file",
    "label_map",
    "model_name",
    "max_texts",
    "max_text_bytes",
    "max_request_bytes",
    "max_context_bytes",
)


def main(argv):
    del argv
    if not FLAGS.checkpoint or not FLAGS.export_dir:
        raise app.UsageError("--checkpoint and --export_dir are required")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from electra_tf.files import OutputExistsError  # pylint: disable=import-outside-toplevel
    from electra_tf.serving.export_finetuned import export  # pylint: disable=import-outside-toplevel

    try:
        path = export(
            FLAGS.checkpoint,
            FLAGS.export_dir,
            **{name: FLAGS[name].value for name in _EXPORT_ARGUMENTS},
        )
    except (ValueError, OSError, OutputExistsError) as e:
        # ExportError, OutputExistsError and the settings' errors name the input and the fix.
        print(f"export_saved_model: error: {e}", file=sys.stderr)
        sys.exit(1)
    except tf.errors.OpError as e:
        print(
            f"export_saved_model: error: --checkpoint={FLAGS.checkpoint} could not be read "
            f"({type(e).__name__}: {e.message.splitlines()[0]}); point --checkpoint at an "
            "intact run_finetuning checkpoint",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"Exported {FLAGS.checkpoint} ({FLAGS.task}, tokenizer {FLAGS.tokenizer}) to {path}")


if __name__ == "__main__":
    app.run(main)
