"""FinetuningSettings: run_finetuning's flags as a validated dataclass, read and written as JSON."""

import json
import os
import subprocess
import sys

import pytest

from electra_tf.finetuning.settings import (
    FinetuningSettings,
    SettingsError,
    parse_flag_strings,
)

REQUIRED = dict(task_name="chunk", train_file="train.txt", dev_file="dev.txt")
REQUIRED.update(init_checkpoint="discriminator", model_dir="runs/chunk")


_FLAGS_CHECK = """
import dataclasses, json, sys
from electra_tf import run_finetuning
from electra_tf.finetuning.settings import FinetuningSettings
required = json.loads(sys.argv[1])
flag_values = run_finetuning.FLAGS
flag_values(["run_finetuning"] + [f"--{k}={v}" for k, v in required.items()])
for field in dataclasses.fields(FinetuningSettings):
    default = flag_values[field.name].default
    if field.name == "seeds":
        default = tuple(int(s) for s in default)
    assert default == field.default, field.name
settings = run_finetuning.settings_from_flags()
assert settings == FinetuningSettings(**required), settings
assert settings.do_lower_case is None
"""


def test_flags_and_settings_share_names_and_defaults():
    # A fresh process: run_finetuning defines absl flags whose names other test modules'
    # imports (experiments.compare, run_pretraining) define too.
    result = subprocess.run(
        [sys.executable, "-c", _FLAGS_CHECK, json.dumps(REQUIRED)],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    "changes, flag",
    [
        (dict(task_name=None), "--task_name: is required"),
        (dict(init_checkpoint=""), "--init_checkpoint: is required"),
        (dict(model_dir=None), "--model_dir: is required"),
        (dict(task_name="nope"), "--task_name: unknown task 'nope'"),
        (dict(train_file=None), "--train_file: is required when --data_dir is not given"),
        (dict(task_name="regression", dev_file=None), "--train_file: --train_file and --dev_file"),
        (dict(label_encoding="IOB"), "--label_encoding: is 'IOB'; choose one of BIOES, none"),
        (dict(mixed_precision="fp8"), "--mixed_precision: is 'fp8'; choose one of none, bfloat16"),
        (dict(distribution_strategy="horovod"), "--distribution_strategy: is 'horovod'; choose"),
        (dict(seeds="1,x"), "--seeds: expected comma-separated integers"),
        (dict(seeds=[]), "--seeds: needs at least one seed"),
        (dict(seeds="1,2,1"), r"--seeds: has duplicates: \[1, 2, 1\]"),
        (dict(max_seq_length=2), r"--max_seq_length: must leave room for \[CLS\]"),
        (dict(learning_rate=0.0), "--learning_rate: must be positive"),
        (dict(layerwise_lr_decay=1.5), r"--layerwise_lr_decay: must be in \[0, 1\]"),
        (dict(num_train_epochs=0), "--num_train_epochs: must be positive"),
        (dict(warmup_proportion=1.5), r"--warmup_proportion: must be in \[0, 1\]"),
        (dict(weight_decay_rate=-0.1), "--weight_decay_rate: must be >= 0"),
        (dict(train_batch_size=0), "--train_batch_size: must be positive"),
        (dict(gradient_accumulation_steps=-1), "--gradient_accumulation_steps: must be positive"),
        (dict(max_train_steps=0), "--max_train_steps: must be positive"),
        (dict(task_name="squad", max_query_length=126), "--max_query_length: must leave room"),
    ],
)
def test_bad_values_raise_an_error_naming_the_flag(changes, flag):
    with pytest.raises(SettingsError, match=f"^{flag}"):
        FinetuningSettings(**{**REQUIRED, **changes})
    # The same check guards replace(): a frozen dataclass cannot be made invalid.
    with pytest.raises(SettingsError, match=f"^{flag}"):
        FinetuningSettings(**REQUIRED).replace(**changes)


def test_canonical_task_seeds_and_round_trip_through_json(tmp_path):
    settings = FinetuningSettings(**{**REQUIRED, "task_name": "CoNLL2000", "seeds": "1, 2,3"})
    assert settings.task_name == "chunk" and settings.seeds == (1, 2, 3)
    assert FinetuningSettings(**{**REQUIRED, "seeds": ["4", 5]}).seeds == (4, 5)
    path = tmp_path / "finetuning_settings.json"
    settings.save(str(path))
    written = json.loads(path.read_text())
    # The keys export_saved_model reads keep their names and meaning.
    assert {k: written[k] for k in ("task_name", "max_seq_length", "do_lower_case")} == {
        "task_name": "chunk",
        "max_seq_length": 128,
        "do_lower_case": None,
    }
    assert written["seeds"] == [1, 2, 3]
    assert FinetuningSettings.load(str(path)) == settings
    assert FinetuningSettings.load(str(path), learning_rate=3e-4).learning_rate == 3e-4


def test_loads_the_settings_files_written_before_every_field_was_kept(tmp_path):
    path = tmp_path / "finetuning_settings.json"
    old = {
        "task_name": "chunk",
        "max_seq_length": 64,
        "do_lower_case": False,
        "label_encoding": "BIOES",
        "doc_stride": 128,
        "max_query_length": 64,
        "max_answer_length": 30,
    }
    path.write_text(json.dumps(old))
    with pytest.raises(SettingsError, match="--init_checkpoint: is required"):
        FinetuningSettings.load(str(path))
    others = {k: v for k, v in REQUIRED.items() if k != "task_name"}
    settings = FinetuningSettings.load(str(path), **others)
    assert (settings.max_seq_length, settings.do_lower_case) == (64, False)
    path.write_text(json.dumps({**old, "learning_rat": 1e-4}))
    with pytest.raises(SettingsError, match=r"--learning_rat: not a fine-tuning setting"):
        FinetuningSettings.load(str(path), **others)
    path.write_text("{not json")
    with pytest.raises(SettingsError, match=f"{path}: not a settings JSON file"):
        FinetuningSettings.load(str(path), **others)


def test_flag_strings_parse_to_typed_values():
    values = parse_flag_strings(
        [
            "--task_name=pos",
            "--max_seq_length=64",
            "--learning_rate=3e-4",
            "--use_xla=false",
            "--layerwise_lr_decay_original_off_by_one",
            "--nodo_lower_case",
            "--seeds=1,2",
            "--max_seq_length=32",  # the later flag wins
        ]
    )
    assert values == {
        "task_name": "pos",
        "max_seq_length": 32,
        "learning_rate": 3e-4,
        "use_xla": False,
        "layerwise_lr_decay_original_off_by_one": True,
        "do_lower_case": False,
        "seeds": ["1", "2"],
    }
    with pytest.raises(SettingsError, match="--max_seq_length=long: invalid literal"):
        parse_flag_strings(["--max_seq_length=long"])
    with pytest.raises(SettingsError, match="--use_xla=maybe: .*Non-boolean"):
        parse_flag_strings(["--use_xla=maybe"])
    with pytest.raises(SettingsError, match="'learning_rat'. Did you mean: learning_rate"):
        parse_flag_strings(["--learning_rat=1"])
    with pytest.raises(SettingsError, match="--label_encoding=BIO: value should be one of"):
        parse_flag_strings(["--label_encoding=BIO"])


def test_check_files_names_the_missing_path(tmp_path):
    settings = FinetuningSettings(**{**REQUIRED, "train_file": str(tmp_path / "train.txt")})
    with pytest.raises(SettingsError, match=f"--train_file: {tmp_path}/train.txt does not exist"):
        settings.check_files()
    (tmp_path / "train.txt").write_text("a B-NP\n")
    (tmp_path / "dev.txt").write_text("a B-NP\n")
    settings = settings.replace(dev_file=str(tmp_path / "dev.txt"), init_checkpoint=str(tmp_path))
    with pytest.raises(SettingsError, match=f"--init_checkpoint: {tmp_path} holds no checkpoint"):
        settings.check_files()
