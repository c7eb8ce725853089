"""Writes ELECTRA pre-training TFRecords from plain-text corpus files.

See electra_tf.build_pretraining_dataset for the input format and the seeding.
"""

import multiprocessing
import os
import random
from collections.abc import Sequence

import tensorflow as tf
from absl import logging

from electra_tf import files
from electra_tf.data import corpora, tokenization
from electra_tf.filenames import DATASET_INFO_FILE, SHARD_PREFIX

CORPUS_SUFFIXES = (".txt", ".txt.gz")

_LINES_PER_BATCH = 2048
# The chance an example gets a single segment, like a classification input.
_SINGLE_SEGMENT_PROB = 0.1
# The chance the next example aims for a random length rather than the maximum.
_RANDOM_LENGTH_PROB = 0.05


def shard_name(index: int, num_shards: int) -> str:
    return f"{SHARD_PREFIX}-{index}-of-{num_shards}"


class ExampleBuilder:
    """Packs consecutive sentences of one document into examples.

    Sentences accumulate until they reach the target length; then they are
    divided into a first and (usually) a second segment and truncated to fit.
    """

    def __init__(self, special: tokenization.SpecialTokens, max_length: int, rng: random.Random):
        self._special = special
        self._max_length = max_length
        self._rng = rng
        self._sentences: list[list[int]] = []
        self._length = 0
        self._target_length = max_length

    def add_sentence(self, token_ids: Sequence[int]) -> tf.train.Example | None:
        """Adds a sentence; returns an example once enough text has accumulated."""
        self._sentences.append(list(token_ids))
        self._length += len(token_ids)
        if self._length >= self._target_length:
            return self._create_example()
        return None

    def end_document(self) -> tf.train.Example | None:
        """Flushes what is left of the document so it never joins the next one."""
        if self._length == 0:
            self._sentences = []
            return None
        return self._create_example()

    def _create_example(self) -> tf.train.Example:
        if self._rng.random() < _SINGLE_SEGMENT_PROB:
            first_target = float("inf")
        else:
            # Three places are kept for [CLS] and the two [SEP]s.
            first_target = (self._target_length - 3) // 2

        first, second = [], []
        for sentence in self._sentences:
            # A sentence that would overflow the first segment still joins it
            # half of the time (while the second is empty and the first is
            # short of its target), so segment boundaries vary.
            if (
                not first
                or len(first) + len(sentence) < first_target
                or (not second and len(first) < first_target and self._rng.random() < 0.5)
            ):
                first += sentence
            else:
                second += sentence

        first = first[: self._max_length - 2]
        second = second[: max(0, self._max_length - len(first) - 3)]

        self._sentences = []
        self._length = 0
        if self._rng.random() < _RANDOM_LENGTH_PROB:
            self._target_length = self._rng.randint(5, self._max_length)
        else:
            self._target_length = self._max_length
        return self._make_example(first, second)

    def _make_example(self, first: list[int], second: list[int]) -> tf.train.Example:
        input_ids = [self._special.cls] + first + [self._special.sep]
        segment_ids = [0] * len(input_ids)
        if second:
            input_ids += second + [self._special.sep]
            segment_ids += [1] * (len(second) + 1)
        padding = self._max_length - len(input_ids)
        features = {
            "input_ids": input_ids + [self._special.pad] * padding,
            "input_mask": [1] * len(input_ids) + [0] * padding,
            "segment_ids": segment_ids + [0] * padding,
        }
        return tf.train.Example(
            features=tf.train.Features(
                feature={
                    name: tf.train.Feature(int64_list=tf.train.Int64List(value=values))
                    for name, values in features.items()
                }
            )
        )


def _examples_from_file(
    path: str,
    tokenizer: tokenization.FullTokenizer,
    max_seq_length: int,
    blanks_separate_docs: bool,
    seed: int,
):
    rng = random.Random(f"{seed}/{os.path.basename(path)}")
    builder = ExampleBuilder(tokenizer.special, max_seq_length, rng)

    def flush_batch(lines):
        for line, token_ids in zip(lines, tokenizer.tokenize(lines).to_list()):
            example = builder.add_sentence(token_ids) if line else builder.end_document()
            if example is not None:
                yield example

    batch = []
    for line in corpora.read_lines(path):
        line = line.strip()
        if line or blanks_separate_docs:
            batch.append(line)
        if len(batch) == _LINES_PER_BATCH:
            yield from flush_batch(batch)
            batch = []
    if batch:
        yield from flush_batch(batch)
    last = builder.end_document()
    if last is not None:
        yield last


def _write_job(
    job_id: int,
    num_jobs: int,
    input_files: Sequence[str],
    vocab_file: str,
    output_dir: str,
    max_seq_length: int,
    num_out_files: int,
    do_lower_case: bool,
    strip_accents: bool | None,
    blanks_separate_docs: bool,
    seed: int,
) -> int:
    """One process: tokenizes its share of the files and writes its share of the shards."""
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case, strip_accents)
    my_files = [f for i, f in enumerate(input_files) if i % num_jobs == job_id]
    writers = [
        tf.io.TFRecordWriter(os.path.join(output_dir, shard_name(i, num_out_files)))
        for i in range(num_out_files)
        if i % num_jobs == job_id
    ]
    num_written = 0
    try:
        for file_number, path in enumerate(my_files, start=1):
            for example in _examples_from_file(
                path, tokenizer, max_seq_length, blanks_separate_docs, seed
            ):
                writers[num_written % len(writers)].write(example.SerializeToString())
                num_written += 1
            logging.info(
                "Job %d: %d/%d files, %d examples written.",
                job_id,
                file_number,
                len(my_files),
                num_written,
            )
    finally:
        for writer in writers:
            writer.close()
    return num_written


class EmptyCorpusError(ValueError):
    """The corpus yields no pre-training example; the message names its files."""


def _output_files(directory: str) -> list[str]:
    return tf.io.gfile.glob(os.path.join(directory, SHARD_PREFIX + "-*")) + tf.io.gfile.glob(
        os.path.join(directory, DATASET_INFO_FILE)
    )


def _swap_in(staging: str, output_dir: str) -> None:
    """Moves the new shards and dataset_info.json from `staging` into `output_dir`.

    The old files go only once the new ones are in place: leftover shards of an
    earlier run (say with another --num_out_files) would be picked up by the same
    glob as the new ones. dataset_info.json moves last, marking the set complete.
    """
    previous = _output_files(output_dir)
    new_files = sorted(_output_files(staging), key=lambda p: p.endswith(DATASET_INFO_FILE))
    new_names = {os.path.basename(path) for path in new_files}
    tf.io.gfile.makedirs(output_dir)
    for path in new_files:
        tf.io.gfile.rename(path, os.path.join(output_dir, os.path.basename(path)), overwrite=True)
    stale = [path for path in previous if os.path.basename(path) not in new_names]
    if stale:
        logging.info("Removed %d file(s) of a previous run from %s.", len(stale), output_dir)
    for path in stale:
        tf.io.gfile.remove(path)


def corpus_files(corpus_dir: str) -> list[str]:
    """The corpus text files (*.txt, *.txt.gz) directly inside `corpus_dir`, sorted."""
    if not tf.io.gfile.isdir(corpus_dir):
        raise FileNotFoundError(f"Corpus directory {corpus_dir} does not exist.")
    names = sorted(tf.io.gfile.listdir(corpus_dir))
    files = [os.path.join(corpus_dir, n) for n in names if n.endswith(CORPUS_SUFFIXES)]
    if not files:
        raise FileNotFoundError(
            f"No corpus files in {corpus_dir}: expected text files named *.txt or *.txt.gz "
            "(one sentence per line, a blank line between documents)."
        )
    ignored = [n for n in names if not n.endswith(CORPUS_SUFFIXES)]
    if ignored:
        logging.info(
            "Ignoring %d file(s) in %s that are not *.txt/*.txt.gz: %s",
            len(ignored),
            corpus_dir,
            ", ".join(ignored[:5]),
        )
    return files


def _check_arguments(input_files, max_seq_length, num_out_files, num_processes):
    if not input_files:
        raise FileNotFoundError("build_pretraining_dataset got no input files.")
    for path in input_files:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"Input file {path} does not exist.")
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length must be at least 5, got {max_seq_length}.")
    if not 1 <= num_processes <= num_out_files:
        raise ValueError(
            f"Need 1 <= num_processes <= num_out_files (every process writes "
            f"its own shards), got {num_processes} and {num_out_files}."
        )


def build_pretraining_dataset(
    input_files: Sequence[str],
    vocab_file: str,
    output_dir: str,
    max_seq_length: int = 128,
    num_out_files: int = 1000,
    num_processes: int = 1,
    do_lower_case: bool = True,
    strip_accents: bool | None = None,
    blanks_separate_docs: bool = True,
    seed: int = 0,
) -> int:
    """Writes `num_out_files` TFRecord shards plus dataset_info.json; returns the example count.

    The data is built in a hidden folder beside `output_dir` and moved in only
    once complete, replacing the shards and dataset_info.json of an earlier run;
    other files there are left alone. A failed build (a bad file, an exception,
    an EmptyCorpusError when the corpus yields no example) leaves `output_dir`
    as it was.
    """
    _check_arguments(input_files, max_seq_length, num_out_files, num_processes)
    vocab = tokenization.load_vocab(vocab_file)  # fail here, not inside a worker
    input_files = sorted(input_files)
    staging = files.temporary_dir_beside(output_dir)
    try:
        num_examples = _build(
            staging,
            input_files,
            vocab,
            vocab_file,
            max_seq_length,
            num_out_files,
            num_processes,
            do_lower_case,
            strip_accents,
            blanks_separate_docs,
            seed,
        )
        _swap_in(staging, output_dir)
    finally:
        tf.io.gfile.rmtree(staging)
    return num_examples


def _build(
    staging,
    input_files,
    vocab,
    vocab_file,
    max_seq_length,
    num_out_files,
    num_processes,
    do_lower_case,
    strip_accents,
    blanks_separate_docs,
    seed,
) -> int:
    """Writes the shards and dataset_info.json into `staging`; the example count."""
    shared_args = (
        num_processes,
        input_files,
        vocab_file,
        staging,
        max_seq_length,
        num_out_files,
        do_lower_case,
        strip_accents,
        blanks_separate_docs,
        seed,
    )
    job_args = [(job_id, *shared_args) for job_id in range(num_processes)]
    if num_processes == 1:
        counts = [_write_job(*job_args[0])]
    else:
        # TensorFlow is not fork-safe once initialized, so workers start fresh.
        with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
            counts = pool.starmap(_write_job, job_args)
    num_examples = sum(counts)
    if num_examples == 0:
        raise EmptyCorpusError(
            f"The corpus yields no examples: no text in {', '.join(input_files)}. Add "
            "text (one sentence per line, a blank line between documents) and build again."
        )

    info = {
        "max_seq_length": max_seq_length,
        "vocab_size": len(vocab),
        "vocab_sha256": tokenization.vocab_sha256(vocab),
        "vocab_file": vocab_file,
        "do_lower_case": do_lower_case,
        "strip_accents": tokenization.resolve_strip_accents(do_lower_case, strip_accents),
        "num_examples": num_examples,
        "num_out_files": num_out_files,
        "seed": seed,
    }
    files.write_json(os.path.join(staging, DATASET_INFO_FILE), info, indent=2)
    return num_examples
