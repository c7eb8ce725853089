"""Learns a WordPiece vocabulary from corpus text (the build_vocab tool's library half)."""

import itertools
import os
from collections.abc import Iterator, Sequence

import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset

from electra_tf import files
from electra_tf.data import corpora, tokenization

_LINES_PER_BATCH = 1024


def _line_batches(input_files: Sequence[str], max_lines: int | None) -> Iterator[list[str]]:
    """The non-blank lines of the files, at most `max_lines` of them, in batches."""
    lines = (line for path in input_files for line in corpora.read_lines(path) if line.strip())
    if max_lines is not None:
        lines = itertools.islice(lines, max_lines)
    while True:
        batch = list(itertools.islice(lines, _LINES_PER_BATCH))
        if not batch:
            return
        yield batch


def build_vocab(
    input_files: Sequence[str],
    vocab_size: int,
    do_lower_case: bool,
    strip_accents: bool | None = None,
    max_lines: int | None = None,
) -> list[str]:
    """Learns a vocabulary of at most `vocab_size` tokens, special tokens first.

    Text is normalized with the tokenizer's own `normalize_text`, so the
    vocabulary sees exactly the words `FullTokenizer` will later produce.
    """
    if vocab_size <= len(tokenization.SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size must exceed {len(tokenization.SPECIAL_TOKENS)}, got {vocab_size}."
        )
    if not input_files:
        raise ValueError("build_vocab needs at least one input file.")
    strip = tokenization.resolve_strip_accents(do_lower_case, strip_accents)
    lines = tf.data.Dataset.from_generator(
        lambda: _line_batches(input_files, max_lines),
        output_signature=tf.TensorSpec([None], tf.string),
    )
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
        learn_params={"max_unique_chars": max(1000, vocab_size // 4)},
    )


def write_vocab(tokens: Sequence[str], path: str) -> None:
    """Writes one token per line (atomically), creating the parent directory."""
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    files.write_text(path, "".join(f"{token}\n" for token in tokens))
