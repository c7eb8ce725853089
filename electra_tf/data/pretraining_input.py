"""Reads the pre-training TFRecords written by build_pretraining_dataset."""

import json
import os

import tensorflow as tf
from absl import logging

from electra_tf.data import tokenization
from electra_tf.filenames import DATASET_INFO_FILE

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids")
# How the input pipeline's error for a token id past the vocabulary begins.
ID_OUT_OF_RANGE = "Token id out of range"

_SHUFFLE_BUFFER_RECORDS = 1000
# How many shards are read at once; more mixes examples from more documents.
_INTERLEAVE_CYCLE_LENGTH = 16


def input_files(file_pattern: str) -> list[str]:
    """Sorted files matching comma-separated globs; every glob must match something."""
    files = set()
    for pattern in (p.strip() for p in file_pattern.split(",")):
        if not pattern:
            continue
        matches = tf.io.gfile.glob(pattern)
        if not matches:
            raise FileNotFoundError(
                f"No pre-training data matches {pattern!r}. Build it with "
                "`python -m electra_tf.build_pretraining_dataset` or fix the pattern."
            )
        files.update(matches)
    if not files:
        raise FileNotFoundError(f"No pre-training data pattern in {file_pattern!r}.")
    return sorted(files)


def _feature_spec(max_seq_length: int) -> dict[str, tf.io.FixedLenFeature]:
    return {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in FEATURE_NAMES}


def _decode_batch(
    records: tf.Tensor, max_seq_length: int, id_limit: tuple[int, str] | None
) -> dict[str, tf.Tensor]:
    features = tf.io.parse_example(records, _feature_spec(max_seq_length))
    if id_limit is not None:
        # Checked here, in tf.data and outside any XLA step: on CPU an id past the
        # embedding table fails with a confusing gather error, and under XLA it
        # silently gathers zeros.
        vocab_size, message = id_limit
        check = tf.debugging.assert_less(
            features["input_ids"], tf.constant(vocab_size, tf.int64), message=message
        )
        with tf.control_dependencies([check]):
            features["input_ids"] = tf.identity(features["input_ids"])
    # The records hold int64 (the only integer proto type); the model wants int32.
    return {name: tf.cast(features[name], tf.int32) for name in FEATURE_NAMES}


def id_out_of_range_message(file_pattern: str, vocab_size: int, vocab_file: str) -> str:
    """The error for a token id >= vocab_size in the data (raised by the input pipeline)."""
    return (
        f"{ID_OUT_OF_RANGE} in {file_pattern}: a token id >= {vocab_size}, the size of "
        f"--vocab_file={vocab_file}, so the data was built with another, larger vocabulary. "
        "Pass the vocab_file the data was built with, or rebuild the data with "
        f"`python -m electra_tf.build_pretraining_dataset --vocab_file={vocab_file}`."
    )


def _check_some_record(files: list[str], file_pattern: str) -> None:
    # An endlessly repeated set of empty files makes tf.data spin without yielding.
    try:
        found = next(iter(tf.data.TFRecordDataset(files).take(1)), None) is not None
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
        return  # a corrupt file: check_shards names it, and reading fails with it
    if not found:
        raise ValueError(
            f"{len(files)} file(s) of {file_pattern!r} ({', '.join(files[:3])}"
            f"{', ...' if len(files) > 3 else ''}) hold no records. Rebuild the data with "
            "`python -m electra_tf.build_pretraining_dataset` from a corpus with text."
        )


def pretraining_dataset(
    file_pattern: str,
    max_seq_length: int,
    batch_size: int,
    is_training: bool,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    vocab_size: int | None = None,
    vocab_file: str | None = None,
) -> tf.data.Dataset:
    """Batches of {input_ids, input_mask, segment_ids}, int32 [batch_size, max_seq_length].

    `batch_size` is per input pipeline. With an `input_context` each pipeline
    reads its own disjoint subset of the files. Partial batches are dropped in
    evaluation too, because the model is compiled for static shapes. Raises
    ValueError when this pipeline's files hold no record (a training pipeline
    would otherwise spin forever). With `vocab_size`, an id at or past it fails
    iteration with InvalidArgumentError naming the data and `vocab_file`.
    """
    if batch_size < 1 or max_seq_length < 1:
        raise ValueError(
            f"batch_size and max_seq_length must be positive, got "
            f"{batch_size} and {max_seq_length}."
        )
    files = input_files(file_pattern)
    if input_context is not None and input_context.num_input_pipelines > 1:
        num_pipelines = input_context.num_input_pipelines
        if len(files) < num_pipelines:
            raise ValueError(
                f"{file_pattern!r} matches {len(files)} file(s) but there are {num_pipelines} "
                "input pipelines, and each needs at least one file. Rebuild the data with "
                f"--num_out_files >= {num_pipelines}."
            )
        files = files[input_context.input_pipeline_id :: num_pipelines]

    _check_some_record(files, file_pattern)
    id_limit = None
    if vocab_size is not None:
        id_limit = (vocab_size, id_out_of_range_message(file_pattern, vocab_size, vocab_file))

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if is_training:
        dataset = dataset.repeat().shuffle(len(files), seed=seed)
        dataset = dataset.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(_INTERLEAVE_CYCLE_LENGTH, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=seed is not None,
        )
        dataset = dataset.shuffle(_SHUFFLE_BUFFER_RECORDS, seed=seed)
    else:
        dataset = tf.data.TFRecordDataset(dataset)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(
        lambda records: _decode_batch(records, max_seq_length, id_limit),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _describe_record(path: str, serialized: bytes, max_seq_length: int) -> str | None:
    """What is wrong with the layout of one serialized record, or None."""
    example = tf.train.Example()
    try:
        example.ParseFromString(serialized)
    except Exception:  # protobuf raises its own DecodeError types
        return (
            f"{path} holds TFRecords that are not tf.train.Example protos; "
            "it is not ELECTRA pre-training data. Rebuild it with "
            "`python -m electra_tf.build_pretraining_dataset`."
        )
    features = example.features.feature
    missing = [name for name in FEATURE_NAMES if name not in features]
    if missing:
        return (
            f"{path} lacks the feature(s) {', '.join(missing)}; it is not ELECTRA "
            "pre-training data. Rebuild it with `python -m electra_tf.build_pretraining_dataset`."
        )
    lengths = {len(features[name].int64_list.value) for name in FEATURE_NAMES}
    if lengths != {max_seq_length}:
        built_with = lengths.pop() if len(lengths) == 1 else sorted(lengths)
        return (
            f"{path} was built with max_seq_length {built_with}, but max_seq_length is "
            f"{max_seq_length}. Set max_seq_length to {built_with}, or rebuild the data "
            f"with --max_seq_length={max_seq_length}."
        )
    return None


def check_shards(file_pattern: str, max_seq_length: int) -> None:
    """Reads the first record of every file, raising ValueError naming the first bad one.

    Also raises ValueError when no file holds a record.
    """
    files = input_files(file_pattern)
    empty = 0
    for path in files:
        try:
            first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise ValueError(
                f"{path} is not a readable TFRecord file (corrupt or truncated: "
                f"{e.message.splitlines()[0]}). Rebuild the data with "
                "`python -m electra_tf.build_pretraining_dataset`."
            ) from None
        if first is None:
            # A shard can legitimately be empty when a corpus has fewer
            # examples than shards; there is no layout to check.
            empty += 1
            continue
        problem = _describe_record(path, first.numpy(), max_seq_length)
        if problem:
            raise ValueError(problem)
    if empty == len(files):
        raise ValueError(
            f"All {len(files)} file(s) matching {file_pattern!r} are empty: there is no "
            "pre-training data. Rebuild it with `python -m electra_tf.build_pretraining_dataset` "
            "from a corpus with text, or fix the pattern."
        )


def check_vocabulary(file_pattern: str, vocab_file: str, tokens: list[str]) -> None:
    """Raises ValueError when the data's dataset_info.json names another vocabulary.

    Compares the vocab size and hash that build_pretraining_dataset records with
    `tokens` (the vocabulary of `vocab_file`). Data without that record (the
    original ELECTRA tool's, or built before hashes were kept) gets a warning.
    """
    vocab_hash = tokenization.vocab_sha256(tokens)
    for directory in sorted({os.path.dirname(path) for path in input_files(file_pattern)}):
        info_path = os.path.join(directory, DATASET_INFO_FILE)
        if not tf.io.gfile.exists(info_path):
            logging.warning(
                "%s does not exist: cannot check that the data in %s was built with %s.",
                info_path,
                directory,
                vocab_file,
            )
            continue
        info = _read_dataset_info(info_path)
        built_with = info.get("vocab_file", "another vocabulary")
        if (
            info.get("vocab_size", len(tokens)) != len(tokens)
            or info.get("vocab_sha256", vocab_hash) != vocab_hash
        ):
            raise ValueError(
                f"--vocab_file={vocab_file} ({len(tokens)} tokens) is not the vocabulary the "
                f"data in {directory} was built with ({built_with}, {info.get('vocab_size')} "
                f"tokens, per {info_path}). Pass that vocabulary, or rebuild the data with "
                f"`python -m electra_tf.build_pretraining_dataset --vocab_file={vocab_file}`."
            )
        if "vocab_sha256" not in info:
            logging.warning(
                "%s records no vocab_sha256 (built by an older version): only the vocab size "
                "was checked against %s.",
                info_path,
                vocab_file,
            )


def _read_dataset_info(path: str) -> dict:
    with tf.io.gfile.GFile(path) as f:
        try:
            info = json.load(f)
        except json.JSONDecodeError as e:
            info = e
    if not isinstance(info, dict):
        raise ValueError(
            f"{path} is not a JSON object ({info}). Rebuild the data with "
            "`python -m electra_tf.build_pretraining_dataset`, or delete that file to skip "
            "the vocabulary check."
        )
    return info


def describe_data_error(
    error: tf.errors.DataLossError | tf.errors.InvalidArgumentError, file_pattern: str
) -> str:
    """A readable account of a data error raised while iterating the dataset."""
    full_message = (error.message or str(error)).strip()
    if ID_OUT_OF_RANGE in full_message:
        # Inside a traced step the assertion's message follows TF's own lines.
        line = full_message[full_message.index(ID_OUT_OF_RANGE) :].splitlines()[0]
        return line.split("] [Condition", 1)[0]
    first_line = full_message.splitlines()[0]
    if isinstance(error, tf.errors.DataLossError):
        problem = "a pre-training data file is corrupt or truncated"
    else:
        problem = (
            "a pre-training record does not have the expected layout "
            "(often a max_seq_length different from the one the data was built with)"
        )
    return (
        f"Reading {file_pattern!r} failed: {problem}: {first_line} "
        f"Find the bad file with electra_tf.data.pretraining_input.check_shards({file_pattern!r}, "
        "max_seq_length) and rebuild it with `python -m electra_tf.build_pretraining_dataset`."
    )
