"""`electra_tf.pretrain(settings)` in this process: result, files, resume, signal handlers."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import tensorflow as tf
from test_run_pretraining import _scalars, corpus  # noqa: F401  (fixture)

import electra_tf
from electra_tf.data import tokenization
from electra_tf.model.encoder import ElectraEncoder
from electra_tf.pretraining import checkpoints, runner
from electra_tf.pretraining.settings import SettingsError

TINY = dict(
    model_hparam_overrides={
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 256,
    },
    embedding_size=64,
    max_seq_length=64,
    generator_hidden_size=0.5,
    train_batch_size=16,
    learning_rate=2e-4,
    num_warmup_steps=5,
    iterations_per_loop=10,
    save_checkpoints_steps=10,
)


def test_pretrain_in_process_returns_the_result_and_resumes(corpus, tmp_path):  # noqa: F811
    model_dir = tmp_path / "model"
    settings = electra_tf.PretrainingSettings(
        pretrain_tfrecords=corpus["records"],
        vocab_file=str(corpus["vocab"]),
        model_dir=str(model_dir),
        num_train_steps=30,
        max_train_steps_this_run=20,
        **TINY,
    )
    handler = signal.getsignal(signal.SIGINT)
    with runner.log_lines_to(str(tmp_path / "log.txt")):
        result = electra_tf.pretrain(settings)
    assert signal.getsignal(signal.SIGINT) is handler
    log = (tmp_path / "log.txt").read_text()
    assert "step 20/30" in log and "Checkpoint: " in log
    # TF's saver logs each save's timing through absl at INFO; the runner drops those lines.
    assert "Sharding callback duration" not in log

    assert result.step == 20 and not result.stopped_on_request
    assert result.model_dir == str(model_dir)
    assert result.checkpoint == f"{model_dir}/ckpt-20"
    assert (model_dir / "ckpt-20.index").exists() and (model_dir / "ckpt-10.index").exists()
    # The result's window is the one the TensorBoard log holds for step 20.
    scalars = _scalars(model_dir)
    assert sorted(scalars["loss"]) == [10, 20]
    for name in ("loss", "disc_auc", "masked_lm_accuracy", "learning_rate"):
        assert result.metrics[name] == pytest.approx(scalars[name][20], rel=1e-5), name
    assert 0.0 < result.metrics["disc_auc"] <= 1.0
    encoder = ElectraEncoder.from_pretrained(result.discriminator_dir)
    assert encoder.config.hidden_size == 64 and encoder.config.num_hidden_layers == 2
    saved = json.loads((model_dir / "pretraining_settings.json").read_text())
    vocab_hash = tokenization.vocab_sha256(tokenization.load_vocab(str(corpus["vocab"])))
    assert saved == {**settings.to_dict(), "vocab_sha256": vocab_hash}
    assert electra_tf.PretrainingSettings.read(str(model_dir)) == settings

    # Continuing with the vocab the run wrote beside its discriminator: that copy stays whole.
    own_vocab = model_dir / "discriminator" / "vocab.txt"
    resumed = electra_tf.pretrain(
        dataclasses.replace(settings, max_train_steps_this_run=None, vocab_file=str(own_vocab))
    )
    assert resumed.step == 30 and resumed.checkpoint == f"{model_dir}/ckpt-30"
    assert sorted(_scalars(model_dir)["loss"]) == [10, 20, 30]
    assert own_vocab.read_text() == corpus["vocab"].read_text()
    assert not [name for name in os.listdir(model_dir) if name.startswith(".")]

    # Another vocabulary (two tokens swapped; data without dataset_info.json, so only the
    # run's own record of the vocabulary can tell).
    tokens = corpus["vocab"].read_text().splitlines()
    tokens[-2:] = tokens[-1], tokens[-2]
    swapped = tmp_path / "swapped_vocab.txt"
    swapped.write_text("\n".join(tokens) + "\n")
    with pytest.raises(SettingsError, match=rf"--vocab_file: {swapped} is not the vocabulary"):
        electra_tf.pretrain(
            dataclasses.replace(
                settings,
                vocab_file=str(swapped),
                pretrain_tfrecords=_records_without_info(corpus, tmp_path),
                num_train_steps=40,
            )
        )

    with pytest.raises(
        SettingsError, match="(?s)another architecture.*--generator_hidden_size: checkpoint has 0.5"
    ):
        electra_tf.pretrain(dataclasses.replace(settings, generator_hidden_size=0.25))


def _records_without_info(corpus, tmp_path):
    """The corpus's shards alone, as the original ELECTRA tool writes them."""
    directory = tmp_path / "records_without_info"
    directory.mkdir()
    for path in (corpus["root"] / "records").glob("pretrain_data.tfrecord-*"):
        shutil.copy(path, directory / path.name)
    return f"{directory}/pretrain_data.tfrecord-*"


def test_an_id_past_the_vocabulary_is_named_also_under_xla(corpus, tmp_path):  # noqa: F811
    small_vocab = tmp_path / "small_vocab.txt"
    small_vocab.write_text("\n".join(corpus["vocab"].read_text().splitlines()[:500]) + "\n")
    records = _records_without_info(corpus, tmp_path)
    settings = electra_tf.PretrainingSettings(
        pretrain_tfrecords=records,
        vocab_file=str(small_vocab),
        model_dir=str(tmp_path / "model"),
        num_train_steps=10,
        use_xla=True,
        **TINY,
    )
    # Under XLA the embedding lookup would gather zeros for these ids and train on.
    with pytest.raises(runner.PretrainingError) as error:
        electra_tf.pretrain(settings)
    message = str(error.value)
    assert message.startswith("Token id out of range in") and records in message
    assert f"--vocab_file={small_vocab}" in message and "500" in message
    assert message.endswith(f"--vocab_file={small_vocab}`.")


def test_pretrain_names_missing_inputs():
    with pytest.raises(SettingsError, match="--pretrain_tfrecords: is required"):
        electra_tf.pretrain(electra_tf.PretrainingSettings())


@pytest.mark.parametrize("state", ["missing", "corrupt", "empty"])
def test_checkpoints_without_a_readable_state_file_are_an_error_saying_how_to_resume(
    tmp_path, state
):
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(step=tf.Variable(1)), str(tmp_path), max_to_keep=None
    )
    for step in (4, 8):
        manager.save(checkpoint_number=step)
    assert checkpoints.latest_checkpoint(str(tmp_path)) == f"{tmp_path}/ckpt-8"
    state_file = tmp_path / "checkpoint"
    if state == "missing":
        state_file.unlink()
    else:
        state_file.write_text({"corrupt": "model_checkpoint_path: {{", "empty": ""}[state])
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.latest_checkpoint(str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"{state_file} is ") and "ckpt-4, ckpt-8" in message
    assert f"""write the line 'model_checkpoint_path: "ckpt-8"' to {state_file}""" in message
    assert "\n" not in message and sorted(os.listdir(tmp_path)) == before
    # The line the message gives is the fix.
    state_file.write_text('model_checkpoint_path: "ckpt-8"\n')
    assert checkpoints.latest_checkpoint(str(tmp_path)) == f"{tmp_path}/ckpt-8"


def test_a_model_dir_without_checkpoints_starts_over(tmp_path):
    assert checkpoints.latest_checkpoint(str(tmp_path)) is None
    (tmp_path / "pretraining_settings.json").write_text("{}")
    assert checkpoints.latest_checkpoint(str(tmp_path)) is None


# Trains on a pipeline that never yields a batch (a filter that drops everything, repeated
# forever: tf.data spins inside the step, where Python signal handlers cannot run).
_STALLED_RUN = """
import tensorflow as tf
from electra_tf.training import distribute

batches = iter(tf.data.Dataset.range(1).repeat().filter(lambda x: x < 0).batch(2))
step = tf.function(lambda: tf.reduce_sum(next(batches)))
with distribute.stop_requests() as stop:
    print("training", flush=True)
    step()
"""


def test_a_stop_request_is_honoured_when_no_batch_ever_arrives(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", _STALLED_RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == "training\n", process.stderr.read()[-3000:]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert f"Received signal {int(signal.SIGTERM)} before the first window" in stderr
    assert "exiting without a checkpoint" in stderr
