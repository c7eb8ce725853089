"""Reads the pre-training TFRecords written by build_pretraining_dataset."""

import tensorflow as tf

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids")

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


def _decode_batch(records: tf.Tensor, max_seq_length: int) -> dict[str, tf.Tensor]:
    features = tf.io.parse_example(records, _feature_spec(max_seq_length))
    # The records hold int64 (the only integer proto type); the model wants int32.
    return {name: tf.cast(features[name], tf.int32) for name in FEATURE_NAMES}


def pretraining_dataset(
    file_pattern: str,
    max_seq_length: int,
    batch_size: int,
    is_training: bool,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of {input_ids, input_mask, segment_ids}, int32 [batch_size, max_seq_length].

    `batch_size` is per input pipeline. With an `input_context` each pipeline
    reads its own disjoint subset of the files. Partial batches are dropped in
    evaluation too, because the model is compiled for static shapes.
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
        lambda records: _decode_batch(records, max_seq_length), num_parallel_calls=tf.data.AUTOTUNE
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
    """Reads the first record of every file, raising ValueError naming the first bad one."""
    for path in input_files(file_pattern):
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
            continue
        problem = _describe_record(path, first.numpy(), max_seq_length)
        if problem:
            raise ValueError(problem)


def describe_data_error(
    error: tf.errors.DataLossError | tf.errors.InvalidArgumentError, file_pattern: str
) -> str:
    """A readable account of a data error raised while iterating the dataset."""
    first_line = (error.message or str(error)).strip().splitlines()[0]
    if isinstance(error, tf.errors.DataLossError):
        problem = "a pre-training data file is corrupt or truncated"
    else:
        problem = (
            "a pre-training record does not have the expected layout "
            "(often a max_seq_length different from the one the data was built with)"
        )
    return (
        f"Reading {file_pattern!r} failed: {problem}: {first_line}\n"
        f"Find the bad file with electra_tf.data.pretraining_input.check_shards({file_pattern!r}, "
        "max_seq_length) and rebuild it with `python -m electra_tf.build_pretraining_dataset`."
    )
