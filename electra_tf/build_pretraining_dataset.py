"""Turns plain-text corpus files into ELECTRA pre-training TFRecords.

    python -m electra_tf.build_pretraining_dataset --corpus_dir=corpus \
        --vocab_file=out/vocab.txt --output_dir=out/pretrain_tfrecords \
        --max_seq_length=128 --num_processes=4 --do_lower_case

Input files (*.txt or *.txt.gz in --corpus_dir) hold one sentence per line
with a blank line between documents. Each example is
[CLS] A [SEP] or [CLS] A [SEP] B [SEP], padded to max_seq_length, with the
features and file names of the original ELECTRA tool, so data built by either
is interchangeable.

The data is built beside --output_dir and moved in only when complete, so a
failed build leaves the previous data there as it was.

Every input file gets its own random generator, seeded from --seed and the
file's name, so the set of examples depends only on the corpus, the
vocabulary and the seed; --num_processes only changes which shard each
example lands in.
"""

import tensorflow as tf
from absl import app, flags, logging

from electra_tf.data.pretraining_records import build_pretraining_dataset, corpus_files

FLAGS = flags.FLAGS


flags.DEFINE_string("corpus_dir", None, "Directory of corpus text files (*.txt, *.txt.gz).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary, one token per line.")
flags.DEFINE_string("output_dir", None, "Where to write the TFRecord shards.")
flags.DEFINE_integer("max_seq_length", 128, "Number of tokens per example.")
flags.DEFINE_integer("num_processes", 1, "Number of worker processes.")
flags.DEFINE_integer("num_out_files", 1000, "Number of TFRecord shards to write.")
flags.DEFINE_bool("blanks_separate_docs", True, "Whether blank lines separate documents.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the text.")
flags.DEFINE_bool("strip_accents", None, "Strip accents; unset means the same as --do_lower_case.")
flags.DEFINE_integer("seed", 0, "Seed of the example-shaping randomness.")
flags.mark_flags_as_required(["corpus_dir", "vocab_file", "output_dir"])
flags.register_validator("max_seq_length", lambda v: v >= 5, "--max_seq_length must be at least 5.")
flags.register_validator("num_processes", lambda v: v >= 1, "--num_processes must be at least 1.")
flags.register_validator("num_out_files", lambda v: v >= 1, "--num_out_files must be at least 1.")
flags.register_multi_flags_validator(
    ["num_processes", "num_out_files"],
    lambda f: f["num_processes"] <= f["num_out_files"],
    "--num_processes must not exceed --num_out_files (each process writes its own shards).",
)


def main(argv):
    del argv
    try:
        num_examples = build_pretraining_dataset(
            corpus_files(FLAGS.corpus_dir),
            FLAGS.vocab_file,
            FLAGS.output_dir,
            max_seq_length=FLAGS.max_seq_length,
            num_out_files=FLAGS.num_out_files,
            num_processes=FLAGS.num_processes,
            do_lower_case=FLAGS.do_lower_case,
            strip_accents=FLAGS.strip_accents,
            blanks_separate_docs=FLAGS.blanks_separate_docs,
            seed=FLAGS.seed,
        )
    except (FileNotFoundError, ValueError, tf.errors.OpError) as e:
        # The corpus, the vocabulary, a flag or an unwritable --output_dir; the output
        # folder is as it was.
        message = str(e)
        if isinstance(e, tf.errors.OpError):
            message = (
                f"{e.message} Check that --corpus_dir and --vocab_file can be read and that "
                f"the folder holding --output_dir={FLAGS.output_dir} can be written."
            )
        raise app.UsageError(" ".join(message.split())) from None
    logging.info("Wrote %d examples to %s.", num_examples, FLAGS.output_dir)


if __name__ == "__main__":
    app.run(main)
