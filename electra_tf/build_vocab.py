"""Learns a WordPiece vocabulary from plain-text corpus files.

    python -m electra_tf.build_vocab --input_files='corpus/*.txt.gz' \
        --vocab_file=out/vocab.txt --vocab_size=30522 --do_lower_case

The special tokens come first, so [PAD] is id 0.
"""

import re

import tensorflow as tf
from absl import app, flags, logging

from electra_tf.data import corpora, tokenization
from electra_tf.data.vocab import build_vocab, write_vocab
from electra_tf.files import same_file

FLAGS = flags.FLAGS


flags.DEFINE_string(
    "input_files", None, "Comma-separated globs of corpus text files (.txt or .txt.gz)."
)
flags.DEFINE_string("vocab_file", None, "Where to write the vocabulary.")
flags.DEFINE_integer("vocab_size", 30522, "Maximum number of tokens, special tokens included.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the text.")
flags.DEFINE_bool("strip_accents", None, "Strip accents; unset means the same as --do_lower_case.")
flags.DEFINE_integer("max_lines", None, "Learn from at most this many non-blank lines.")
flags.mark_flags_as_required(["input_files", "vocab_file"])
flags.register_validator(
    "vocab_size",
    lambda v: v > len(tokenization.SPECIAL_TOKENS),
    f"--vocab_size must exceed {len(tokenization.SPECIAL_TOKENS)}.",
)
flags.register_validator(
    "max_lines", lambda v: v is None or v > 0, "--max_lines must be positive when given."
)


def _refuse_input_as_output(input_files, vocab_file):
    for path in input_files:
        if same_file(path, vocab_file):
            raise ValueError(
                f"--vocab_file={vocab_file} is also an input file: writing the vocabulary would "
                "replace that corpus file. Choose another --vocab_file."
            )


def _wrapped_message(error):
    """The Python error's own text inside a tf.data error (`{{function_node ...}} ValueError: ...`)."""
    first_line = error.message.strip().splitlines()[0]
    return re.sub(r"^\{\{[^}]*\}\}\s*(\w+Error: )?", "", first_line)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        input_files = corpora.expand_file_patterns(FLAGS.input_files)
        _refuse_input_as_output(input_files, FLAGS.vocab_file)
        logging.info(
            "Learning a %d-token vocabulary from %d file(s).", FLAGS.vocab_size, len(input_files)
        )
        tokens = build_vocab(
            input_files, FLAGS.vocab_size, FLAGS.do_lower_case, FLAGS.strip_accents, FLAGS.max_lines
        )
    except (OSError, ValueError) as e:
        raise SystemExit(f"build_vocab: error: --input_files={FLAGS.input_files}: {e}") from None
    except tf.errors.OpError as e:
        # A corpus error raised inside tf.data arrives wrapped; its message names the file.
        raise SystemExit(f"build_vocab: error: {_wrapped_message(e)}") from None
    write_vocab(tokens, FLAGS.vocab_file)
    logging.info("Wrote %d tokens to %s.", len(tokens), FLAGS.vocab_file)


if __name__ == "__main__":
    app.run(main)
