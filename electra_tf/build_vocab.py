"""Learns a WordPiece vocabulary from plain-text corpus files.

    python -m electra_tf.build_vocab --input_files='corpus/*.txt.gz' \
        --vocab_file=out/vocab.txt --vocab_size=30522 --do_lower_case

The special tokens come first, so [PAD] is id 0.
"""

import itertools
import os
from typing import Iterator, List, Optional, Sequence

from absl import app, flags, logging
import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset

from electra_tf import corpora, tokenization

_LINES_PER_BATCH = 1024


def _line_batches(input_files: Sequence[str], max_lines: Optional[int]) -> Iterator[List[str]]:
    """The non-blank lines of the files, at most `max_lines` of them, in batches."""
    lines = (line for path in input_files for line in corpora.read_lines(path) if line.strip())
    if max_lines is not None:
        lines = itertools.islice(lines, max_lines)
    while True:
        batch = list(itertools.islice(lines, _LINES_PER_BATCH))
        if not batch:
            return
        yield batch


def build_vocab(input_files: Sequence[str], vocab_size: int, do_lower_case: bool,
                strip_accents: Optional[bool] = None,
                max_lines: Optional[int] = None) -> List[str]:
    """Learns a vocabulary of at most `vocab_size` tokens, special tokens first.

    Text is normalized with the tokenizer's own `normalize_text`, so the
    vocabulary sees exactly the words `FullTokenizer` will later produce.
    """
    if vocab_size <= len(tokenization.SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed {len(tokenization.SPECIAL_TOKENS)}, got {vocab_size}.")
    if not input_files:
        raise ValueError("build_vocab needs at least one input file.")
    strip = tokenization.resolve_strip_accents(do_lower_case, strip_accents)
    lines = tf.data.Dataset.from_generator(
        lambda: _line_batches(input_files, max_lines),
        output_signature=tf.TensorSpec([None], tf.string))
    normalized = lines.map(lambda batch: tokenization.normalize_text(batch, do_lower_case, strip))
    if next(iter(lines.take(1)), None) is None:
        raise ValueError(f"No text in {', '.join(input_files)}: every line is blank.")
    return bert_vocab_from_dataset.bert_vocab_from_dataset(
        normalized,
        vocab_size=vocab_size,
        reserved_tokens=list(tokenization.SPECIAL_TOKENS),
        # Normalization already happened above; the learner only splits words.
        bert_tokenizer_params={"lower_case": False},
        # Chinese and Korean use thousands of distinct characters. Words with a
        # character outside the allowed alphabet are dropped, so the default
        # 1000 would silently remove most CJK text; a quarter of the vocabulary
        # (each character may need a "##" twin) leaves room for longer pieces.
        learn_params={"max_unique_chars": max(1000, vocab_size // 4)})


def write_vocab(tokens: Sequence[str], path: str) -> None:
    """Writes one token per line, creating the parent directory."""
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(f"{token}\n" for token in tokens))


FLAGS = flags.FLAGS


def _define_flags():
    # Defined only when run as a program: the demo imports this module next
    # to others that define flags of the same names.
    flags.DEFINE_string("input_files", None,
                        "Comma-separated globs of corpus text files (.txt or .txt.gz).")
    flags.DEFINE_string("vocab_file", None, "Where to write the vocabulary.")
    flags.DEFINE_integer("vocab_size", 30522, "Maximum number of tokens, special tokens included.")
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the text.")
    flags.DEFINE_bool("strip_accents", None,
                      "Strip accents; unset means the same as --do_lower_case.")
    flags.DEFINE_integer("max_lines", None, "Learn from at most this many non-blank lines.")
    flags.mark_flags_as_required(["input_files", "vocab_file"])
    flags.register_validator("vocab_size", lambda v: v > len(tokenization.SPECIAL_TOKENS),
                             f"--vocab_size must exceed {len(tokenization.SPECIAL_TOKENS)}.")
    flags.register_validator("max_lines", lambda v: v is None or v > 0,
                             "--max_lines must be positive when given.")


def main(argv):
    del argv
    input_files = corpora.expand_file_patterns(FLAGS.input_files)
    logging.info("Learning a %d-token vocabulary from %d file(s).", FLAGS.vocab_size, len(input_files))
    tokens = build_vocab(input_files, FLAGS.vocab_size, FLAGS.do_lower_case,
                         FLAGS.strip_accents, FLAGS.max_lines)
    write_vocab(tokens, FLAGS.vocab_file)
    logging.info("Wrote %d tokens to %s.", len(tokens), FLAGS.vocab_file)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
