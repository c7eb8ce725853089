"""pretraining_dataset, check_shards and describe_data_error on small hand-written shards."""

import json
import logging

import pytest
import tensorflow as tf

from electra_tf.data import pretraining_input, tokenization

SEQ_LENGTH = 16
NUM_FILES = 5
RECORDS_PER_FILE = 7


def make_example(first_id, length=SEQ_LENGTH):
    values = {
        "input_ids": [first_id] + [1] * (length - 1),
        "input_mask": [1] * length,
        "segment_ids": [0] * length,
    }
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                name: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
                for name, v in values.items()
            }
        )
    )


def write_shard(path, first_ids, length=SEQ_LENGTH):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for first_id in first_ids:
            writer.write(make_example(first_id, length).SerializeToString())
    return str(path)


@pytest.fixture()
def shards(tmp_path):
    """Five shards; input_ids[0] = 100 * file index + record index identifies each record."""
    for f in range(NUM_FILES):
        write_shard(
            tmp_path / f"pretrain_data.tfrecord-{f}-of-{NUM_FILES}",
            [100 * f + r for r in range(RECORDS_PER_FILE)],
        )
    return str(tmp_path / "pretrain_data.tfrecord-*")


def first_ids(dataset):
    return [int(i) for batch in dataset for i in batch["input_ids"][:, 0]]


@pytest.mark.parametrize("is_training", [True, False])
def test_batches_have_static_shapes_and_int32(shards, is_training):
    dataset = pretraining_input.pretraining_dataset(
        shards, SEQ_LENGTH, batch_size=4, is_training=is_training, seed=1
    )
    for name in pretraining_input.FEATURE_NAMES:
        assert dataset.element_spec[name].shape == (4, SEQ_LENGTH)
        assert dataset.element_spec[name].dtype == tf.int32
    batch = next(iter(dataset))
    assert batch["input_mask"].numpy().sum() == 4 * SEQ_LENGTH


def test_eval_reads_each_record_once_and_drops_the_partial_batch(shards):
    dataset = pretraining_input.pretraining_dataset(
        shards, SEQ_LENGTH, batch_size=4, is_training=False
    )
    ids = first_ids(dataset)
    total = NUM_FILES * RECORDS_PER_FILE
    assert len(ids) == total // 4 * 4 == len(set(ids))


def test_training_repeats_and_shuffles(shards):
    dataset = pretraining_input.pretraining_dataset(
        shards, SEQ_LENGTH, batch_size=5, is_training=True, seed=3
    )
    ids = first_ids(dataset.take(100))
    all_records = {100 * f + r for f in range(NUM_FILES) for r in range(RECORDS_PER_FILE)}
    assert len(ids) == 500 and set(ids) == all_records
    assert ids[:RECORDS_PER_FILE] != list(range(RECORDS_PER_FILE))


def test_input_context_splits_files_disjointly(shards):
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = pretraining_input.pretraining_dataset(
            shards, SEQ_LENGTH, batch_size=1, is_training=False, input_context=context
        )
        seen.append({i // 100 for i in first_ids(dataset)})
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == set(range(NUM_FILES))


def test_fewer_files_than_pipelines_is_an_error(shards):
    context = tf.distribute.InputContext(num_input_pipelines=8, input_pipeline_id=0)
    with pytest.raises(ValueError, match=r"matches 5 file\(s\) but there are 8 input pipelines"):
        pretraining_input.pretraining_dataset(shards, SEQ_LENGTH, 4, True, input_context=context)


def test_unmatched_pattern_is_named(shards, tmp_path):
    pattern = f"{shards},{tmp_path}/missing-*"
    with pytest.raises(FileNotFoundError, match=r"No pre-training data matches '.*missing-\*'"):
        pretraining_input.pretraining_dataset(pattern, SEQ_LENGTH, 4, True)


def test_check_shards_accepts_good_data(shards):
    pretraining_input.check_shards(shards, SEQ_LENGTH)


def test_check_shards_names_a_truncated_file(shards, tmp_path):
    path = tmp_path / "pretrain_data.tfrecord-2-of-5"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(
        ValueError, match=r"tfrecord-2-of-5 is not a readable TFRecord file .*Rebuild"
    ):
        pretraining_input.check_shards(shards, SEQ_LENGTH)


def test_check_shards_names_a_file_of_garbage(shards, tmp_path):
    (tmp_path / "pretrain_data.tfrecord-9-of-5").write_bytes(b"this is not a tfrecord at all" * 10)
    with pytest.raises(ValueError, match=r"tfrecord-9-of-5 is not a readable TFRecord file"):
        pretraining_input.check_shards(shards, SEQ_LENGTH)


def test_check_shards_reports_the_length_the_data_was_built_with(shards, tmp_path):
    write_shard(tmp_path / "pretrain_data.tfrecord-3-of-5", [1, 2], length=SEQ_LENGTH * 2)
    with pytest.raises(
        ValueError,
        match=(
            r"tfrecord-3-of-5 was built with max_seq_length 32, but "
            r"max_seq_length is 16.*--max_seq_length=16"
        ),
    ):
        pretraining_input.check_shards(shards, SEQ_LENGTH)


def test_check_shards_rejects_records_of_another_kind(shards, tmp_path):
    with tf.io.TFRecordWriter(str(tmp_path / "pretrain_data.tfrecord-4-of-5")) as writer:
        writer.write(tf.train.Example().SerializeToString())
    with pytest.raises(ValueError, match=r"tfrecord-4-of-5 lacks the feature\(s\) input_ids"):
        pretraining_input.check_shards(shards, SEQ_LENGTH)


def test_describe_data_error_for_corruption_met_mid_run(shards, tmp_path):
    path = tmp_path / "pretrain_data.tfrecord-0-of-5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the first records still read fine
    pretraining_input.check_shards(shards, SEQ_LENGTH)
    dataset = pretraining_input.pretraining_dataset(shards, SEQ_LENGTH, 2, is_training=False)
    with pytest.raises(tf.errors.DataLossError) as caught:
        first_ids(dataset)
    message = pretraining_input.describe_data_error(caught.value, shards)
    assert "corrupt or truncated" in message and shards in message and "check_shards" in message


def test_describe_data_error_for_wrong_layout(shards):
    dataset = pretraining_input.pretraining_dataset(shards, SEQ_LENGTH * 2, 2, is_training=False)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        first_ids(dataset)
    assert "max_seq_length" in pretraining_input.describe_data_error(caught.value, shards)


def test_check_shards_and_the_pipeline_refuse_a_set_with_no_records(tmp_path):
    for f in range(2):
        write_shard(tmp_path / f"pretrain_data.tfrecord-{f}-of-2", [])
    pattern = str(tmp_path / "pretrain_data.tfrecord-*")
    with pytest.raises(ValueError, match=r"All 2 file\(s\) matching .* are empty"):
        pretraining_input.check_shards(pattern, SEQ_LENGTH)
    # Repeated forever, these files would make tf.data spin without yielding.
    with pytest.raises(ValueError, match=r"2 file\(s\) of .* hold no records"):
        pretraining_input.pretraining_dataset(pattern, SEQ_LENGTH, 2, is_training=True)


def test_check_shards_accepts_some_empty_shards(shards, tmp_path):
    write_shard(tmp_path / f"pretrain_data.tfrecord-9-of-{NUM_FILES}", [])
    pretraining_input.check_shards(shards, SEQ_LENGTH)


def test_an_id_past_the_vocabulary_fails_in_the_pipeline_naming_data_and_vocab(shards):
    # The shards' largest id is 406 (file 4, record 6).
    fits = pretraining_input.pretraining_dataset(
        shards, SEQ_LENGTH, 5, is_training=False, vocab_size=407, vocab_file="v.txt"
    )
    assert len(first_ids(fits)) == 35
    too_small = pretraining_input.pretraining_dataset(
        shards, SEQ_LENGTH, 5, is_training=False, vocab_size=300, vocab_file="small/vocab.txt"
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        first_ids(too_small)
    message = pretraining_input.describe_data_error(raised.value, shards)
    assert message.startswith(pretraining_input.ID_OUT_OF_RANGE)
    assert shards in message and "--vocab_file=small/vocab.txt" in message
    assert "300" in message and message.endswith("--vocab_file=small/vocab.txt`.")


def _dataset_info(directory, **values):
    (directory / "dataset_info.json").write_text(json.dumps(values))


def test_check_vocabulary_compares_size_and_hash_with_dataset_info(shards, tmp_path, caplog):
    tokens = [f"t{i}" for i in range(10)]
    vocab_hash = tokenization.vocab_sha256(tokens)
    with caplog.at_level(logging.WARNING):
        pretraining_input.check_vocabulary(shards, "v.txt", tokens)
    assert "dataset_info.json does not exist" in caplog.text

    _dataset_info(tmp_path, vocab_size=10, vocab_sha256=vocab_hash, vocab_file="built.txt")
    pretraining_input.check_vocabulary(shards, "v.txt", tokens)

    _dataset_info(tmp_path, vocab_size=11, vocab_sha256=vocab_hash, vocab_file="built.txt")
    with pytest.raises(ValueError, match=r"--vocab_file=v\.txt \(10 tokens\).*built\.txt, 11"):
        pretraining_input.check_vocabulary(shards, "v.txt", tokens)

    swapped = tokens[:8] + [tokens[9], tokens[8]]
    _dataset_info(tmp_path, vocab_size=10, vocab_sha256=vocab_hash, vocab_file="built.txt")
    with pytest.raises(
        ValueError, match=r"is not the vocabulary the data .*\(built\.txt, 10 tokens"
    ):
        pretraining_input.check_vocabulary(shards, "v.txt", swapped)

    caplog.clear()
    _dataset_info(tmp_path, vocab_size=10, vocab_file="built.txt")
    with caplog.at_level(logging.WARNING):
        pretraining_input.check_vocabulary(shards, "v.txt", swapped)
    assert "records no vocab_sha256" in caplog.text

    (tmp_path / "dataset_info.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"dataset_info\.json is not a JSON object"):
        pretraining_input.check_vocabulary(shards, "v.txt", tokens)
