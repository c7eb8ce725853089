"""Fine-tunes a pre-trained ELECTRA discriminator on a tagging, GLUE or SQuAD task.

    python -m electra_tf.run_finetuning --flagfile=configs/finetune_ner.flags \
        --init_checkpoint=runs/electra_small/discriminator \
        --data_dir=/path/to/wikiann_en --model_dir=runs/ner

--init_checkpoint also takes a Hugging Face ELECTRA directory, a
google-research/electra (TF1) checkpoint or a tf-models-official checkpoint
as downloaded (see electra_tf.load_encoder).

Flag names and defaults follow google-research/electra's
configure_finetuning.py. Each seed in --seeds trains one model: the dev set
is scored after every epoch, the best checkpoint (by the task metric) is kept
in <model_dir>/seed_<seed>/best, and its predictions on the dev (and test)
files are written beside it. <model_dir>/results.json holds the per-seed
scores with their median, mean and standard deviation.

The flags fill an electra_tf.FinetuningSettings and call electra_tf.finetune,
which a Python caller can use directly.
"""

import dataclasses

from absl import app, flags

import electra_tf  # noqa: F401  (selects the Keras backend before keras loads)
from electra_tf.finetuning.settings import LABEL_ENCODINGS, FinetuningSettings
from electra_tf.training import distribute

FLAGS = flags.FLAGS

_DEFAULT = {field.name: field.default for field in dataclasses.fields(FinetuningSettings)}

# Data.
flags.DEFINE_string(
    "task_name",
    _DEFAULT["task_name"],
    "ner (wikiann / conll2003), chunk, pos, a GLUE task (cola, sst-2, mrpc, "
    "sts-b, qqp, mnli, qnli, rte, wnli), squad, squadv2, or tagging / "
    "classification / regression for your own files.",
)
flags.DEFINE_string(
    "data_dir",
    _DEFAULT["data_dir"],
    "Folder of the task's train/dev/test files (GLUE: the GLUE root or the task folder).",
)
flags.DEFINE_string("train_file", _DEFAULT["train_file"], "Training file (overrides --data_dir).")
flags.DEFINE_string(
    "dev_file", _DEFAULT["dev_file"], "Dev file, scored after each epoch (overrides --data_dir)."
)
flags.DEFINE_string(
    "test_file", _DEFAULT["test_file"], "Test file to predict with the best checkpoint."
)
flags.DEFINE_integer(
    "word_column", _DEFAULT["word_column"], "Tagging: column of the words (CoNLL-U: FORM)."
)
flags.DEFINE_integer(
    "label_column", _DEFAULT["label_column"], "Tagging: column of the labels (CoNLL-U: UPOS)."
)
flags.DEFINE_enum(
    "label_encoding",
    _DEFAULT["label_encoding"],
    list(LABEL_ENCODINGS),
    "Tagging: train span labels (B-/I- tags) as BIOES, as the original does; "
    "predictions are written and scored as IOB2.",
)
# Model.
flags.DEFINE_string(
    "init_checkpoint",
    _DEFAULT["init_checkpoint"],
    "Pre-trained discriminator: our directory "
    "(<pretraining model_dir>/discriminator: config.json + encoder.ckpt), a "
    "Hugging Face ELECTRA directory, a google-research/electra checkpoint or a "
    "tf-models-official checkpoint (the format is detected).",
)
flags.DEFINE_string(
    "vocab_file",
    _DEFAULT["vocab_file"],
    "WordPiece vocabulary (default: vocab.txt beside the discriminator).",
)
flags.DEFINE_bool(
    "do_lower_case",
    True,
    "Lower-case the text (must match pre-training; default: "
    "an HF checkpoint's tokenizer_config.json when it says, else true).",
)
flags.DEFINE_string(
    "model_dir", _DEFAULT["model_dir"], "Checkpoints, predictions and results.json."
)
flags.DEFINE_integer(
    "max_seq_length",
    _DEFAULT["max_seq_length"],
    "Wordpieces per input (longer sentences are split "
    "into windows for tagging, truncated for GLUE, strided for SQuAD).",
)
# Optimization.
flags.DEFINE_float(
    "learning_rate",
    _DEFAULT["learning_rate"],
    "Peak learning rate (paper: small 3e-4, base 1e-4, large 5e-5).",
)
flags.DEFINE_bool(
    "freeze_encoder",
    _DEFAULT["freeze_encoder"],
    "Train only the task head on the discriminator's fixed features (a probe of what "
    "pre-training learned); the encoder runs without dropout and keeps its weights.",
)
flags.DEFINE_float(
    "layerwise_lr_decay",
    _DEFAULT["layerwise_lr_decay"],
    "Layer-wise LR decay (large: 0.9); 0 turns it off.",
)
flags.DEFINE_bool(
    "layerwise_lr_decay_original_off_by_one",
    _DEFAULT["layerwise_lr_decay_original_off_by_one"],
    "Reproduce the original code's depths (top layer gets decay^2, not decay^1).",
)
flags.DEFINE_float(
    "num_train_epochs", _DEFAULT["num_train_epochs"], "Passes over the training data."
)
flags.DEFINE_float(
    "warmup_proportion", _DEFAULT["warmup_proportion"], "Fraction of the steps with linear warmup."
)
flags.DEFINE_float("weight_decay_rate", _DEFAULT["weight_decay_rate"], "Decoupled weight decay.")
flags.DEFINE_integer(
    "train_batch_size", _DEFAULT["train_batch_size"], "Global batch per optimizer step."
)
flags.DEFINE_integer(
    "eval_batch_size", _DEFAULT["eval_batch_size"], "Batch for dev/test prediction."
)
flags.DEFINE_integer(
    "gradient_accumulation_steps",
    _DEFAULT["gradient_accumulation_steps"],
    "Micro-batches per optimizer step.",
)
flags.DEFINE_list(
    "seeds",
    [str(seed) for seed in _DEFAULT["seeds"]],
    "Comma-separated seeds; one model is trained per seed.",
)
flags.DEFINE_integer(
    "max_train_steps", _DEFAULT["max_train_steps"], "Stop after this many steps (for quick tests)."
)
flags.DEFINE_integer(
    "iterations_per_loop",
    _DEFAULT["iterations_per_loop"],
    "Steps per host call; also the log period.",
)
# SQuAD.
flags.DEFINE_integer(
    "max_query_length", _DEFAULT["max_query_length"], "SQuAD: question wordpieces kept."
)
flags.DEFINE_integer(
    "doc_stride", _DEFAULT["doc_stride"], "SQuAD: stride between document windows."
)
flags.DEFINE_integer("n_best_size", _DEFAULT["n_best_size"], "SQuAD: candidates per question.")
flags.DEFINE_integer(
    "max_answer_length", _DEFAULT["max_answer_length"], "SQuAD: longest answer in wordpieces."
)
distribute.define_flags()
flags.adopt_module_key_flags(distribute)


def settings_from_flags(flag_values=FLAGS) -> FinetuningSettings:
    """The settings the parsed flags describe (validated; errors name the flag)."""
    values = {
        field.name: flag_values[field.name].value
        for field in dataclasses.fields(FinetuningSettings)
    }
    # Unset, --do_lower_case follows the checkpoint's tokenizer_config.json (else True).
    if not flag_values["do_lower_case"].present:
        values["do_lower_case"] = None
    return FinetuningSettings(**values)


def main(argv):
    del argv
    settings = settings_from_flags()
    # Imported after the flags are checked: a usage error costs no TensorFlow start-up.
    from electra_tf.finetuning import conll, glue  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning.models import EncoderMismatchError  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning.runner import finetune  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning.tasks import InputError  # pylint: disable=import-outside-toplevel
    from electra_tf.training.trainer import NonFiniteLossError  # pylint: disable=import-outside-toplevel

    try:
        finetune(settings)
    except app.UsageError:
        raise
    except NonFiniteLossError as e:
        raise SystemExit(f"run_finetuning: stopped: {e}") from None
    except (
        InputError,
        EncoderMismatchError,
        conll.ConllFormatError,
        glue.DataFormatError,
        FileNotFoundError,
        UnicodeDecodeError,
        ValueError,  # e.g. a vocabulary that does not parse; ConversionError
    ) as e:
        raise SystemExit(f"run_finetuning: error: {e}") from None


if __name__ == "__main__":
    app.run(main)
