"""FinetuningSettings: everything one fine-tuning run needs, validated when built.

The field names and defaults are run_finetuning's flags (google-research/electra's
configure_finetuning.py names); run_finetuning fills the settings from its flags and
electra_tf.finetune takes them directly. A run writes the settings it used to
<model_dir>/finetuning_settings.json, which FinetuningSettings.load reads back.
"""

import dataclasses
import json
import os

from absl import app, flags

from electra_tf.finetuning import glue
from electra_tf.training import flag_fields
from electra_tf.training.flag_fields import distributed, setting

# Tagging task -> main metric (None: entity F1 when the labels are B-/I- tags, else accuracy).
TAGGING_TASKS = {
    "ner": "entity_f1",
    "chunk": "entity_f1",
    "pos": "token_accuracy",
    "tagging": None,
}
TASK_ALIASES = {
    "conll2003": "ner",
    "wikiann": "ner",
    "conll2000": "chunk",
    "upos": "pos",
    "sst": "sst-2",
    "sts": "sts-b",
    "squad1": "squad",
    "squad2": "squadv2",
    "squad_v2": "squadv2",
    "squad-v2": "squadv2",
}
CUSTOM_TASKS = ("classification", "regression")
QA_TASKS = ("squad", "squadv2")
LABEL_ENCODINGS = ("BIOES", "none")
_REQUIRED = ("task_name", "init_checkpoint", "model_dir")
_POSITIVE = (
    "train_batch_size",
    "eval_batch_size",
    "gradient_accumulation_steps",
    "iterations_per_loop",
    "n_best_size",
    "max_answer_length",
    "doc_stride",
    "max_query_length",
)


class SettingsError(app.UsageError, ValueError):
    """A setting that cannot work; the message starts with its flag name (--name: ...)."""


def _require(condition, name, message):
    if not condition:
        raise SettingsError(f"--{name}: {message}")


def canonical_task_name(name: str) -> str:
    """The task a --task_name (or one of its aliases) selects: "conll2000" -> "chunk"."""
    key = _canonical_or_none(name)
    if key is None:
        raise SettingsError(
            f"--task_name: unknown task {name!r}; choose one of "
            f"{sorted(TAGGING_TASKS) + sorted(glue.TASKS) + list(CUSTOM_TASKS) + list(QA_TASKS)} "
            f"(aliases: {sorted(TASK_ALIASES)})"
        )
    return key


def _canonical_or_none(name):
    key = TASK_ALIASES.get(name.lower(), name.lower())
    if key in TAGGING_TASKS or key in CUSTOM_TASKS or key in QA_TASKS:
        return key
    try:
        return glue.get_task(key).name
    except KeyError:
        return None


def parse_seeds(values) -> tuple[int, ...]:
    """Seeds from a list (of ints or digit strings) or a comma-separated string."""
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    elif isinstance(values, int):
        values = [values]
    try:
        seeds = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise SettingsError(f"--seeds: expected comma-separated integers, got {values!r}") from None
    _require(seeds, "seeds", "needs at least one seed")
    _require(len(set(seeds)) == len(seeds), "seeds", f"has duplicates: {list(seeds)}")
    return seeds


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinetuningSettings:
    """One fine-tuning run; bad values raise SettingsError naming the flag.

    Fields are run_finetuning's flags with their defaults (see its --help);
    `task_name` is stored canonical ("conll2000" -> "chunk") and `seeds` as a
    tuple of ints. `do_lower_case=None` takes the checkpoint's own setting (an
    HF tokenizer_config.json), else True.

    Example:

    ```python
    import electra_tf

    settings = electra_tf.FinetuningSettings(
        task_name="chunk",
        train_file="conll2000/train.txt",
        dev_file="conll2000/test.txt",
        init_checkpoint="electra-small-discriminator",
        model_dir="runs/chunk",
        seeds="1,2,3",
    )
    settings.save("chunk_settings.json")
    assert electra_tf.FinetuningSettings.load("chunk_settings.json") == settings
    ```
    """

    # Data.
    task_name: str | None = setting(
        None,
        flags.DEFINE_string,
        "ner (wikiann / conll2003), chunk, pos, a GLUE task (cola, sst-2, mrpc, sts-b, qqp, "
        "mnli, qnli, rte, wnli), squad, squadv2, or tagging / classification / regression for "
        "your own files.",
    )
    data_dir: str | None = setting(
        None,
        flags.DEFINE_string,
        "Folder of the task's train/dev/test files (GLUE: the GLUE root or the task folder).",
    )
    train_file: str | None = setting(
        None, flags.DEFINE_string, "Training file (overrides --data_dir)."
    )
    dev_file: str | None = setting(
        None, flags.DEFINE_string, "Dev file, scored after each epoch (overrides --data_dir)."
    )
    test_file: str | None = setting(
        None, flags.DEFINE_string, "Test file to predict with the best checkpoint."
    )
    word_column: int = setting(
        0, flags.DEFINE_integer, "Tagging: column of the words (CoNLL-U: FORM)."
    )
    label_column: int = setting(
        -1, flags.DEFINE_integer, "Tagging: column of the labels (CoNLL-U: UPOS)."
    )
    label_encoding: str = setting(
        "BIOES",
        flags.DEFINE_enum,
        "Tagging: train span labels (B-/I- tags) as BIOES, as the original does; predictions "
        "are written and scored as IOB2.",
        choices=LABEL_ENCODINGS,
    )
    # Model.
    init_checkpoint: str | None = setting(
        None,
        flags.DEFINE_string,
        "Pre-trained discriminator: our directory (<pretraining model_dir>/discriminator: "
        "config.json + encoder.ckpt), a Hugging Face ELECTRA directory, a google-research/electra "
        "checkpoint or a tf-models-official checkpoint (the format is detected).",
    )
    vocab_file: str | None = setting(
        None,
        flags.DEFINE_string,
        "WordPiece vocabulary (default: vocab.txt beside the discriminator).",
    )
    do_lower_case: bool | None = setting(
        None,
        flags.DEFINE_bool,
        "Lower-case the text (must match pre-training; default: an HF checkpoint's "
        "tokenizer_config.json when it says, else true).",
    )
    model_dir: str | None = setting(
        None,
        flags.DEFINE_string,
        "Checkpoints, predictions and results.json. Re-running the same command resumes the run "
        "it holds; a folder holding anything else needs --overwrite.",
    )
    overwrite: bool = setting(
        False,
        flags.DEFINE_bool,
        "Start over in a --model_dir that holds other files or a run with other settings: "
        "files of the same names are replaced, others stay.",
    )
    max_seq_length: int = setting(
        128,
        flags.DEFINE_integer,
        "Wordpieces per input (longer sentences are split into windows for tagging, truncated "
        "for GLUE, strided for SQuAD).",
    )
    # Optimization.
    learning_rate: float = setting(
        1e-4, flags.DEFINE_float, "Peak learning rate (paper: small 3e-4, base 1e-4, large 5e-5)."
    )
    freeze_encoder: bool = setting(
        False,
        flags.DEFINE_bool,
        "Train only the task head on the discriminator's fixed features (a probe of what "
        "pre-training learned); the encoder runs without dropout and keeps its weights.",
    )
    layerwise_lr_decay: float = setting(
        0.8, flags.DEFINE_float, "Layer-wise LR decay (large: 0.9); 0 turns it off."
    )
    layerwise_lr_decay_original_off_by_one: bool = setting(
        False,
        flags.DEFINE_bool,
        "Reproduce the original code's depths (top layer gets decay^2, not decay^1).",
    )
    num_train_epochs: float = setting(3.0, flags.DEFINE_float, "Passes over the training data.")
    warmup_proportion: float = setting(
        0.1, flags.DEFINE_float, "Fraction of the steps with linear warmup."
    )
    weight_decay_rate: float = setting(0.01, flags.DEFINE_float, "Decoupled weight decay.")
    train_batch_size: int = setting(32, flags.DEFINE_integer, "Global batch per optimizer step.")
    eval_batch_size: int = setting(32, flags.DEFINE_integer, "Batch for dev/test prediction.")
    gradient_accumulation_steps: int = setting(
        1, flags.DEFINE_integer, "Micro-batches per optimizer step."
    )
    seeds: tuple[int, ...] = setting(
        (0,), flags.DEFINE_list, "Comma-separated seeds; one model is trained per seed."
    )
    max_train_steps: int | None = setting(
        None, flags.DEFINE_integer, "Stop after this many steps (for quick tests)."
    )
    iterations_per_loop: int = setting(
        1000, flags.DEFINE_integer, "Steps per host call; also the log period."
    )
    # SQuAD.
    max_query_length: int = setting(64, flags.DEFINE_integer, "SQuAD: question wordpieces kept.")
    doc_stride: int = setting(128, flags.DEFINE_integer, "SQuAD: stride between document windows.")
    n_best_size: int = setting(20, flags.DEFINE_integer, "SQuAD: candidates per question.")
    max_answer_length: int = setting(
        30, flags.DEFINE_integer, "SQuAD: longest answer in wordpieces."
    )
    # Scale-out (electra_tf.training.distribute's flags).
    distribution_strategy: str = distributed("default", flag_fields.STRATEGIES)
    tpu: str | None = distributed(None)
    num_gpus: int | None = distributed(None)
    mixed_precision: str = distributed("none", flag_fields.MIXED_PRECISIONS)
    use_xla: bool | None = distributed(None)

    def __post_init__(self):
        for name in _REQUIRED:
            _require(getattr(self, name), name, "is required")
        object.__setattr__(self, "task_name", canonical_task_name(self.task_name))
        object.__setattr__(self, "seeds", parse_seeds(self.seeds))
        flag_fields.check_choices(self, SettingsError)
        for name in ("data_dir", "train_file", "dev_file", "test_file", "init_checkpoint"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        self._check_data_sources()
        self._check_numbers()

    def _check_data_sources(self):
        if self.task_name in CUSTOM_TASKS:
            _require(
                self.train_file and self.dev_file,
                "train_file",
                f"--train_file and --dev_file are required for --task_name={self.task_name}"
                " (CSV/TSV with a header, or JSONL: text[_a], text_b, label)",
            )
        elif not self.data_dir:
            for name in ("train_file", "dev_file"):
                _require(getattr(self, name), name, "is required when --data_dir is not given")

    def _check_numbers(self):
        _require(self.max_seq_length >= 3, "max_seq_length", "must leave room for [CLS] and [SEP]")
        _require(self.learning_rate > 0, "learning_rate", "must be positive")
        _require(
            0.0 <= self.layerwise_lr_decay <= 1.0,
            "layerwise_lr_decay",
            "must be in [0, 1] (0 turns it off)",
        )
        _require(self.num_train_epochs > 0, "num_train_epochs", "must be positive")
        _require(0.0 <= self.warmup_proportion <= 1.0, "warmup_proportion", "must be in [0, 1]")
        _require(self.weight_decay_rate >= 0, "weight_decay_rate", "must be >= 0")
        for name in _POSITIVE:
            _require(getattr(self, name) > 0, name, "must be positive")
        if self.max_train_steps is not None:
            _require(self.max_train_steps > 0, "max_train_steps", "must be positive")
        if self.task_name in QA_TASKS:
            _require(
                self.max_query_length + 3 < self.max_seq_length,
                "max_query_length",
                f"must leave room for the document in --max_seq_length={self.max_seq_length}",
            )

    def check_files(self):
        """Checks the files the settings name exist; returns the init checkpoint's source.

        Run before any work (electra_tf.finetune does), so a typo in a path fails
        in a second, naming the flag.
        """
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        from electra_tf.convert.load import find_checkpoint  # pylint: disable=import-outside-toplevel
        from electra_tf.convert.report import ConversionError  # pylint: disable=import-outside-toplevel

        for name in ("data_dir", "train_file", "dev_file", "test_file"):
            value = getattr(self, name)
            if value:
                check = tf.io.gfile.isdir if name == "data_dir" else tf.io.gfile.exists
                _require(check(value), name, f"{value} does not exist")
        try:
            source = find_checkpoint(self.init_checkpoint)
        except ConversionError as e:
            raise SettingsError(f"--init_checkpoint: {e}") from None
        if self.vocab_file:
            _require(
                tf.io.gfile.exists(self.vocab_file),
                "vocab_file",
                f"{self.vocab_file} does not exist",
            )
        else:
            _require(
                source.vocab_file,
                "vocab_file",
                f"is required: {source.checkpoint} has no vocab.txt beside it",
            )
        return source

    def replace(self, **changes) -> "FinetuningSettings":
        """A copy with `changes`, validated again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["seeds"] = list(self.seeds)
        return values

    @classmethod
    def from_dict(cls, values: dict, **overrides) -> "FinetuningSettings":
        """Settings from a dict such as finetuning_settings.json's; unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(
                f"--{unknown[0]}: not a fine-tuning setting (unknown keys {unknown}; "
                f"known: {sorted(known)})"
            )
        return cls(**{**values, **overrides})

    def save(self, path: str) -> None:
        """Writes the settings as JSON (finetuning_settings.json's format), atomically."""
        from electra_tf import files  # pylint: disable=import-outside-toplevel

        files.write_json(path, self.to_dict(), indent=1)

    def run_identity(self) -> dict:
        """The settings a resumed run must share with the run it resumes (all but --overwrite)."""
        values = self.to_dict()
        del values["overwrite"]
        return values

    def differences(self, other: "FinetuningSettings") -> list[str]:
        """One line per setting of the run's identity that differs from `other`'s (the saved run)."""
        ours, theirs = self.run_identity(), other.run_identity()
        return [
            f"--{name}: {theirs[name]!r} in the saved run, {ours[name]!r} now"
            for name in ours
            if ours[name] != theirs[name]
        ]

    def is_run_in(self, model_dir: str) -> bool:
        """Whether model_dir holds a run of these settings to resume (its finetuning_settings.json).

        False when it holds no settings file; SettingsError naming the settings that differ when
        it holds another run's.
        """
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        from electra_tf.filenames import FINETUNING_SETTINGS_FILE  # pylint: disable=import-outside-toplevel

        path = f"{model_dir.rstrip('/')}/{FINETUNING_SETTINGS_FILE}"
        if not tf.io.gfile.exists(path):
            return False
        try:
            saved = FinetuningSettings.load(path)
        except SettingsError as e:
            raise SettingsError(
                f"--model_dir: {e}. Pass --overwrite to start over in {model_dir}, or choose "
                "a new --model_dir"
            ) from None
        differing = self.differences(saved)
        if differing:
            raise SettingsError(
                f"--model_dir: {model_dir} holds a fine-tuning run with other settings "
                f"({'; '.join(differing)}), so it cannot be resumed. Re-run with the saved "
                "settings to resume it, choose a new --model_dir, or pass --overwrite to start "
                "over there"
            )
        return True

    @classmethod
    def load(cls, path: str, **overrides) -> "FinetuningSettings":
        """Reads save()'s JSON; `overrides` replace (or supply) fields.

        Files written before the settings held every field (task_name plus the
        export fields only) load with the missing required ones passed here:
        FinetuningSettings.load(path, init_checkpoint=..., model_dir=...).
        """
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        with tf.io.gfile.GFile(path, "r") as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as e:
                raise SettingsError(f"{path}: not a settings JSON file: {e}") from None
        if not isinstance(values, dict):
            raise SettingsError(f"{path}: holds a {type(values).__name__}, not a settings object")
        return cls.from_dict(values, **overrides)


def parse_flag_strings(args) -> dict:
    """The settings that run_finetuning command-line flags ("--name=value", "--[no]name") set.

    Only the flags given are returned; a later flag overrides an earlier one, as on a
    command line. A flag that does not parse or does not exist raises SettingsError.
    """
    flag_values = flag_fields.parse_flags(FinetuningSettings, "run_finetuning", args, SettingsError)
    return flag_fields.values_from_flags(FinetuningSettings, flag_values, only_given=True)
