"""The pre-training CLI end to end: learning on real text, resume, stop, and bad input."""

import gzip
import hashlib
import itertools
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from electra_tf.data.pretraining_records import build_pretraining_dataset
from electra_tf.data.vocab import build_vocab, write_vocab

TINY_MODEL = [
    "--model_size=small",
    '--model_hparam_overrides={"hidden_size": 64, "num_hidden_layers": 2, '
    '"num_attention_heads": 2, "intermediate_size": 256}',
    "--embedding_size=64",
    "--max_seq_length=64",
    "--generator_hidden_size=0.5",
    "--train_batch_size=16",
    "--learning_rate=2e-4",
    "--num_warmup_steps=20",
]


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    """Vocabulary + TFRecords from 800 real Wikipedia lines."""
    root = tmp_path_factory.mktemp("wiki")
    text = root / "corpus" / "wiki.txt"
    text.parent.mkdir()
    with gzip.open(shared_data / "pretrain_en_wikipedia" / "wiki_en_000.txt.gz", "rt") as f:
        text.write_text("".join(itertools.islice(f, 800)))
    vocab_file = root / "vocab.txt"
    write_vocab(build_vocab([str(text)], 1000, do_lower_case=True), str(vocab_file))
    build_pretraining_dataset(
        [str(text)],
        str(vocab_file),
        str(root / "records"),
        max_seq_length=64,
        num_out_files=4,
        num_processes=1,
    )
    return {"vocab": vocab_file, "records": f"{root}/records/pretrain_data.tfrecord*", "root": root}


def _command(corpus, model_dir, *extra):
    return [
        sys.executable,
        "-m",
        "electra_tf.run_pretraining",
        *TINY_MODEL,
        f"--pretrain_tfrecords={corpus['records']}",
        f"--vocab_file={corpus['vocab']}",
        f"--model_dir={model_dir}",
        *extra,
    ]


def _run(corpus, model_dir, *extra, timeout=600):
    return subprocess.run(
        _command(corpus, model_dir, *extra), capture_output=True, text=True, timeout=timeout
    )


def _scalars(model_dir):
    """{tag: {step: value}} from the run's TensorBoard event files."""
    values = {}
    for path in tf.io.gfile.glob(f"{model_dir}/train/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def _checkpoint_step(model_dir):
    latest = tf.train.latest_checkpoint(str(model_dir))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


def _digests(model_dir, step):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in pathlib.Path(model_dir).glob(f"ckpt-{step}.*")
    }


def test_learns_on_real_text_and_writes_the_discriminator(corpus, tmp_path):
    model_dir = tmp_path / "model"
    result = _run(
        corpus,
        model_dir,
        "--num_train_steps=200",
        "--iterations_per_loop=25",
        "--save_checkpoints_steps=100",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = _scalars(model_dir)
    for tag in (
        "loss",
        "masked_lm_accuracy",
        "masked_lm_loss",
        "sampled_masked_lm_accuracy",
        "disc_loss",
        "disc_accuracy",
        "disc_precision",
        "disc_recall",
        "disc_auc",
        "learning_rate",
        "examples_per_second",
    ):
        assert tag in scalars, tag
    steps = sorted(scalars["loss"])
    assert steps[0] == 25 and steps[-1] == 200
    first, last = steps[0], steps[-1]
    assert scalars["loss"][last] < 0.8 * scalars["loss"][first]
    assert scalars["masked_lm_accuracy"][last] > scalars["masked_lm_accuracy"][first], scalars
    assert scalars["disc_accuracy"][last] > scalars["disc_accuracy"][first], scalars
    assert max(scalars["disc_auc"].values()) > 0.55, scalars
    assert "ETA" in result.stderr and "examples/s" in result.stderr

    # The discriminator alone, ready for fine-tuning.
    from electra_tf.model.encoder import ElectraEncoder

    encoder = ElectraEncoder.from_pretrained(str(model_dir / "discriminator"))
    assert encoder.config.hidden_size == 64
    assert (model_dir / "discriminator" / "vocab.txt").read_text() == corpus["vocab"].read_text()


def test_resume_after_sigkill_continues_and_keeps_earlier_checkpoints(corpus, tmp_path):
    model_dir = tmp_path / "model"
    flags = [
        "--num_train_steps=60",
        "--iterations_per_loop=5",
        "--save_checkpoints_steps=5",
        "--keep_checkpoint_max=0",
    ]
    process = subprocess.Popen(
        _command(corpus, model_dir, *flags), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while (_checkpoint_step(model_dir) or 0) < 20:
        assert process.poll() is None and time.time() < deadline, "no checkpoint at step 20"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _checkpoint_step(model_dir)
    assert killed_at < 60
    before = _digests(model_dir, 20)

    result = _run(corpus, model_dir, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {killed_at}" in result.stderr
    assert _checkpoint_step(model_dir) == 60
    assert _digests(model_dir, 20) == before
    steps = sorted(_scalars(model_dir)["loss"])
    assert steps[-1] == 60 and killed_at + 5 in steps


def test_sigterm_checkpoints_and_exits_cleanly(corpus, tmp_path):
    model_dir = tmp_path / "model"
    flags = ["--num_train_steps=100000", "--iterations_per_loop=5", "--save_checkpoints_steps=1000"]
    process = subprocess.Popen(
        _command(corpus, model_dir, *flags),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not list((model_dir / "train").glob("events.out.tfevents.*")) or not _scalars(model_dir):
        assert process.poll() is None and time.time() < deadline, "training never logged"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    stopped_at = _checkpoint_step(model_dir)
    assert stopped_at and stopped_at % 5 == 0

    result = _run(corpus, model_dir, *flags, "--max_train_steps_this_run=5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {stopped_at}" in result.stderr
    assert _checkpoint_step(model_dir) == stopped_at + 5


def test_non_finite_loss_stops_and_leaves_the_last_checkpoint(corpus, tmp_path):
    model_dir = tmp_path / "model"
    assert (
        _run(
            corpus,
            model_dir,
            "--num_train_steps=100",
            "--max_train_steps_this_run=10",
            "--iterations_per_loop=10",
        ).returncode
        == 0
    )
    assert _checkpoint_step(model_dir) == 10
    before = _digests(model_dir, 10)
    result = _run(
        corpus,
        model_dir,
        "--num_train_steps=100",
        "--iterations_per_loop=10",
        "--learning_rate=1e30",
        "--num_warmup_steps=0",
    )
    assert result.returncode != 0
    assert "The loss became" in result.stderr and "last checkpoint is intact" in result.stderr
    assert _checkpoint_step(model_dir) == 10 and _digests(model_dir, 10) == before


def _assert_fails(result, *fragments):
    """A named error: non-zero exit, no traceback, every fragment on the error's one line."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last_line, result.stderr[-3000:]


def test_bad_inputs_fail_with_clear_messages(corpus, tmp_path):
    _assert_fails(
        _run({**corpus, "records": str(tmp_path / "none*")}, tmp_path / "m1"),
        "--pretrain_tfrecords",
        str(tmp_path / "none*"),
    )

    no_mask = tmp_path / "vocab_no_mask.txt"
    no_mask.write_text(
        "\n".join(t for t in corpus["vocab"].read_text().splitlines() if t != "[MASK]") + "\n"
    )
    _assert_fails(_run({**corpus, "vocab": no_mask}, tmp_path / "m2"), "--vocab_file", "[MASK]")

    _assert_fails(
        _run(corpus, tmp_path / "m3", "--max_seq_length=600"),
        "--max_seq_length",
        "max_position_embeddings",
    )
    _assert_fails(_run(corpus, tmp_path / "m4", "--mask_prob=1.5"), "--mask_prob")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "pretrain_data.tfrecord-0-of-1").write_bytes(os.urandom(300))
    _assert_fails(
        _run({**corpus, "records": f"{corrupt}/pretrain_data.tfrecord*"}, tmp_path / "m5"),
        "pretrain_data.tfrecord-0-of-1",
    )

    model_dir = tmp_path / "m6"
    assert _run(corpus, model_dir, "--num_train_steps=5", "--iterations_per_loop=5").returncode == 0
    _assert_fails(
        _run(corpus, model_dir, "--num_train_steps=10", "--generator_hidden_size=0.25"),
        "--generator_hidden_size",
        "another architecture",
    )
    settings = json.loads((model_dir / "pretraining_settings.json").read_text())
    assert settings["generator_hidden_size"] == 0.5

    # The checkpoint state file lost: no silent start from step 0 over ckpt-5.
    (model_dir / "checkpoint").unlink()
    before = _digests(model_dir, 5)
    _assert_fails(
        _run(corpus, model_dir, "--num_train_steps=10"),
        f"{model_dir}/checkpoint is missing",
        f"""write the line 'model_checkpoint_path: "ckpt-5"' to {model_dir}/checkpoint""",
    )
    assert _digests(model_dir, 5) == before and not (model_dir / "checkpoint").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    for index in range(2):
        (empty / f"pretrain_data.tfrecord-{index}-of-2").write_bytes(b"")
    _assert_fails(
        _run({**corpus, "records": f"{empty}/pretrain_data.tfrecord*"}, tmp_path / "m7"),
        "--pretrain_tfrecords",
        "are empty: there is no pre-training data",
    )

    larger = tmp_path / "vocab_larger.txt"
    larger.write_text(corpus["vocab"].read_text() + "zzzextra\n")
    size = len(corpus["vocab"].read_text().splitlines())
    _assert_fails(
        _run({**corpus, "vocab": larger}, tmp_path / "m8"),
        f"--vocab_file={larger} ({size + 1} tokens) is not the vocabulary the data in "
        f"{corpus['root']}/records was built with ({corpus['vocab']}, {size} tokens",
    )


def test_two_stage_switches_once_and_resumes_in_the_second_stage(corpus, tmp_path):
    model_dir = tmp_path / "model"
    flags = [
        "--generator_training=two_stage",
        "--generator_hidden_size=1.0",
        "--two_stage_generator_fraction=0.5",
        "--num_train_steps=12",
        "--iterations_per_loop=2",
        "--save_checkpoints_steps=4",
        "--keep_checkpoint_max=0",
    ]
    first = _run(corpus, model_dir, *flags, "--max_train_steps_this_run=8")
    assert first.returncode == 0, first.stderr[-3000:]
    # One process switches in place: no second start resuming from the switch's checkpoint.
    assert "the discriminator stage starts" in first.stderr
    assert "Resumed from" not in first.stderr and first.stderr.count("Training small from") == 1
    assert _checkpoint_step(model_dir) == 8
    # Saves come every 4 steps; step 6 is the switch's own checkpoint.
    assert (model_dir / "ckpt-6.index").exists()
    disc_loss = _scalars(model_dir)["disc_loss"]
    assert [disc_loss[step] for step in (2, 4, 6)] == [0.0, 0.0, 0.0], disc_loss
    assert disc_loss[8] > 0.0, disc_loss

    second = _run(corpus, model_dir, *flags)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Resumed from {model_dir}/ckpt-8 at step 8" in second.stderr
    assert _checkpoint_step(model_dir) == 12
    disc_loss = _scalars(model_dir)["disc_loss"]
    # Still the discriminator's stage: stage one would report a zero loss.
    assert disc_loss[10] > 0.0 and disc_loss[12] > 0.0, disc_loss
    assert (model_dir / "discriminator" / "config.json").exists()
