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
signatures and export/README.md for serving it.
"""

import os
import sys

from absl import app, flags

import electra_tf  # noqa: F401  (selects the Keras backend before keras loads)

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
flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
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


def main(argv):
    del argv
    if not FLAGS.checkpoint or not FLAGS.export_dir:
        raise app.UsageError("--checkpoint and --export_dir are required")
    from electra_tf.serving import export  # pylint: disable=import-outside-toplevel

    export_dir = os.path.abspath(FLAGS.export_dir)
    try:
        # Refuse an existing version before loading anything.
        export.resolve_version(export_dir, FLAGS.version, FLAGS.overwrite)
        model, vocab, labels, settings, sources = export.load_finetuned(
            FLAGS.checkpoint, FLAGS.task, FLAGS.config_file, FLAGS.vocab_file, FLAGS.label_map
        )
        max_seq_length = FLAGS.max_seq_length or int(settings.get("max_seq_length", 128))
        do_lower_case = (
            FLAGS.do_lower_case
            if FLAGS.do_lower_case is not None
            else bool(settings.get("do_lower_case", True))
        )
        common = dict(
            do_lower_case=do_lower_case,
            max_seq_length=max_seq_length,
            version=FLAGS.version,
            overwrite=FLAGS.overwrite,
            model_name=FLAGS.model_name,
        )
        if FLAGS.task == "token_classification":
            path = export.export_token_classifier(
                model, vocab, labels, export_dir, tokenizer=FLAGS.tokenizer, **common
            )
        elif FLAGS.task in ("squad", "squadv2"):
            if FLAGS.tokenizer != "core":
                raise export.ExportError(
                    "--tokenizer=tensorflow_text is only available for --task=token_classification"
                )
            path = export.export_question_answering(
                model,
                vocab,
                export_dir,
                doc_stride=FLAGS.doc_stride or int(settings.get("doc_stride", 128)),
                max_query_length=FLAGS.max_query_length
                or int(settings.get("max_query_length", 64)),
                max_answer_length=FLAGS.max_answer_length
                or int(settings.get("max_answer_length", 30)),
                **common,
            )
        else:
            if FLAGS.tokenizer != "core":
                raise export.ExportError(
                    "--tokenizer=tensorflow_text is only available for --task=token_classification"
                )
            path = export.export_sequence_classifier(model, vocab, labels, export_dir, **common)
    except (export.ExportError, FileNotFoundError) as e:
        print(f"export_saved_model: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(
        f"Exported {sources['checkpoint']} ({FLAGS.task}, {len(labels or [])} labels, max_seq_length "
        f"{max_seq_length}, tokenizer {FLAGS.tokenizer}) to {path}"
    )


if __name__ == "__main__":
    app.run(main)
