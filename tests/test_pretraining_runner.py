"""`electra_tf.pretrain(settings)` in this process: result, files, resume, signal handlers."""

import dataclasses
import json
import os
import signal

import pytest
import tensorflow as tf
from test_run_pretraining import _scalars, corpus  # noqa: F401  (fixture)

import electra_tf
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
    assert saved == settings.to_dict()
    assert electra_tf.PretrainingSettings.read(str(model_dir)) == settings

    resumed = electra_tf.pretrain(dataclasses.replace(settings, max_train_steps_this_run=None))
    assert resumed.step == 30 and resumed.checkpoint == f"{model_dir}/ckpt-30"
    assert sorted(_scalars(model_dir)["loss"]) == [10, 20, 30]

    with pytest.raises(
        SettingsError, match="(?s)another architecture.*--generator_hidden_size: checkpoint has 0.5"
    ):
        electra_tf.pretrain(dataclasses.replace(settings, generator_hidden_size=0.25))


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
