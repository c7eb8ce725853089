"""PretrainingSettings: named validation errors, the flags, and the settings file."""

import dataclasses
import json
import logging

import pytest
from absl import flags

from electra_tf.filenames import PRETRAINING_SETTINGS_FILE
from electra_tf.model import config as config_lib
from electra_tf.pretraining.settings import PretrainingSettings, SettingsError


@pytest.mark.parametrize(
    "values, flag",
    [
        ({"mask_prob": 1.5}, "--mask_prob"),
        ({"temperature": 0.0}, "--temperature"),
        ({"num_train_steps": 0}, "--num_train_steps"),
        ({"num_warmup_steps": -1}, "--num_warmup_steps"),
        ({"learning_rate": 0.0}, "--learning_rate"),
        ({"iterations_per_loop": 0}, "--iterations_per_loop"),
        ({"save_checkpoints_steps": 0}, "--save_checkpoints_steps"),
        ({"gradient_accumulation_steps": 0}, "--gradient_accumulation_steps"),
        ({"max_seq_length": 2}, "--max_seq_length"),
        ({"generator_hidden_size": 1.5}, "--generator_hidden_size"),
        ({"generator_layers": 0.0}, "--generator_layers"),
        ({"max_predictions_per_seq": 200}, "--max_predictions_per_seq"),
        ({"model_hparam_overrides": "{not json"}, "--model_hparam_overrides"),
        ({"model_hparam_overrides": "[1]"}, "--model_hparam_overrides"),
        ({"objective": "bert"}, "--objective"),
        ({"embedding_sharing": "some"}, "--embedding_sharing"),
        ({"distribution_strategy": "horovod"}, "--distribution_strategy"),
        ({"mixed_precision": "fp8"}, "--mixed_precision"),
    ],
)
def test_bad_values_fail_naming_the_flag(values, flag):
    with pytest.raises(SettingsError, match=f"^{flag}"):
        PretrainingSettings(**values)


def test_required_inputs_are_named_and_the_defaults_are_the_originals():
    settings = PretrainingSettings()
    with pytest.raises(SettingsError, match="--pretrain_tfrecords: is required"):
        settings.require_inputs()
    # google-research/electra configure_pretraining.py defaults.
    assert (settings.learning_rate, settings.mask_prob, settings.disc_weight) == (5e-4, 0.15, 50.0)
    assert (settings.num_train_steps, settings.num_warmup_steps) == (1000000, 10000)
    assert settings.max_predictions == int((0.15 + 0.005) * 128) == 19
    assert settings.two_stage_switch_step == 500000


def test_model_configs_follow_the_generator_rules_and_check_positions():
    settings = PretrainingSettings(
        model_hparam_overrides={"hidden_size": 128, "num_hidden_layers": 2},
        generator_hidden_size=0.5,
        embedding_sharing="none",
    )
    assert json.loads(settings.model_hparam_overrides) == {
        "hidden_size": 128,
        "num_hidden_layers": 2,
    }
    discriminator, generator = settings.model_configs(500)
    assert discriminator == config_lib.preset(
        "small", hidden_size=128, num_hidden_layers=2, vocab_size=500
    )
    assert generator == config_lib.generator_config(discriminator, 0.5, 1.0, True)
    with pytest.raises(SettingsError, match="--max_seq_length.*max_position_embeddings"):
        PretrainingSettings(max_seq_length=600).model_configs(500)


def test_flags_parse_without_the_global_flags(tmp_path):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--num_train_steps=77\n--learning_rate=1e-3\n")
    settings = PretrainingSettings.from_flags(
        [f"--flagfile={flagfile}", "--nountied_generator", "--use_xla=false", "--seed=3"]
    )
    assert settings == PretrainingSettings(
        num_train_steps=77, learning_rate=1e-3, untied_generator=False, use_xla=False, seed=3
    )
    assert "num_train_steps" not in flags.FLAGS
    with pytest.raises(SettingsError, match="mask_prob"):
        PretrainingSettings.from_flags(["--mask_prob=2"])
    with pytest.raises(SettingsError, match="bogus"):
        PretrainingSettings.from_flags(["--bogus=1"])


def test_settings_file_round_trips_and_reads_older_files(tmp_path):
    settings = PretrainingSettings(
        pretrain_tfrecords="data/*.tfrecord",
        vocab_file="vocab.txt",
        model_dir=str(tmp_path),
        objective="electric",
        model_hparam_overrides='{"hidden_size": 64}',
        use_xla=False,
    )
    path = settings.write(str(tmp_path))
    assert path == f"{tmp_path}/{PRETRAINING_SETTINGS_FILE}"
    assert json.loads((tmp_path / PRETRAINING_SETTINGS_FILE).read_text()) == dataclasses.asdict(
        settings
    )
    assert PretrainingSettings.read(str(tmp_path)) == settings
    assert PretrainingSettings.read(path) == settings

    # A converted model_dir's file: the architecture, vocabulary and seed only, plus a key
    # from another version.
    older = tmp_path / "older"
    older.mkdir()
    (older / PRETRAINING_SETTINGS_FILE).write_text(
        json.dumps(
            {
                "model_size": "small",
                "model_hparam_overrides": '{"hidden_size": 64}',
                "embedding_size": None,
                "max_seq_length": 64,
                "generator_hidden_size": 0.5,
                "generator_layers": 1.0,
                "untied_generator_embeddings": False,
                "vocab_size": 120,
                "seed": 4,
                "removed_flag": 1,
            }
        )
    )
    read = PretrainingSettings.read(str(older))
    assert (read.vocab_size, read.seed, read.max_seq_length, read.objective) == (
        120,
        4,
        64,
        "electra",
    )


def test_resuming_checks_only_the_architecture_it_saved(tmp_path):
    saved = PretrainingSettings(
        model_hparam_overrides='{"hidden_size": 64, "num_hidden_layers": 2}',
        generator_hidden_size=0.5,
    )
    saved.write(str(tmp_path))
    # Other steps, rates and spacing of the same JSON object resume.
    dataclasses.replace(
        saved,
        num_train_steps=5,
        learning_rate=1e-3,
        model_hparam_overrides='{"num_hidden_layers":2,"hidden_size":64}',
    ).check_resumable(str(tmp_path))
    with pytest.raises(SettingsError) as error:
        dataclasses.replace(saved, generator_hidden_size=0.25, objective="mlm").check_resumable(
            str(tmp_path)
        )
    message = str(error.value)
    assert "another architecture" in message
    assert "--generator_hidden_size: checkpoint has 0.5, settings say 0.25" in message
    assert "--objective: checkpoint has 'electra', settings say 'mlm'" in message
    PretrainingSettings(objective="mlm").check_resumable(str(tmp_path / "empty"))


def test_the_saved_vocab_hash_must_match_on_resume(tmp_path, caplog):
    saved = PretrainingSettings(vocab_file="runs/a/vocab.txt")
    saved.write(str(tmp_path), vocab_sha256="a" * 64)
    assert (
        json.loads((tmp_path / PRETRAINING_SETTINGS_FILE).read_text())["vocab_sha256"] == "a" * 64
    )
    with caplog.at_level(logging.WARNING):
        assert PretrainingSettings.read(str(tmp_path)) == saved
    assert "no setting" not in caplog.text
    saved.check_resumable(str(tmp_path), "a" * 64)
    other = dataclasses.replace(saved, vocab_file="other/vocab.txt")
    with pytest.raises(SettingsError) as error:
        other.check_resumable(str(tmp_path), "b" * 64)
    message = str(error.value)
    assert message.startswith("--vocab_file: other/vocab.txt is not the vocabulary")
    assert "runs/a/vocab.txt" in message and "new --model_dir" in message
    # A run saved before hashes were kept resumes unchecked.
    PretrainingSettings().write(str(tmp_path / "older"))
    saved.check_resumable(str(tmp_path / "older"), "b" * 64)


def test_an_unreadable_settings_file_is_named(tmp_path):
    (tmp_path / PRETRAINING_SETTINGS_FILE).write_text('{"model_size": ')
    with pytest.raises(SettingsError, match=r"--model_dir: .*pretraining_settings\.json is not"):
        PretrainingSettings().check_resumable(str(tmp_path))
