"""FinetuningSettings: everything one fine-tuning run needs, validated when built.

The field names and defaults are run_finetuning's flags (google-research/electra's
configure_finetuning.py names); run_finetuning fills the settings from its flags and
electra_tf.finetune takes them directly. A run writes the settings it used to
<model_dir>/finetuning_settings.json, which FinetuningSettings.load reads back.
"""

import dataclasses
import json
import os
import typing

from absl import app

from electra_tf.finetuning import glue

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
MIXED_PRECISIONS = ("none", "bfloat16", "float16")
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


_TRUE, _FALSE = ("true", "t", "1", "yes"), ("false", "f", "0", "no")


def _flag_value(field, text):
    kinds = set(typing.get_args(field.type) or (field.type,)) - {type(None)}
    try:
        if bool in kinds:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if field.name != "seeds" and int in kinds:
            return int(text)
        if float in kinds:
            return float(text)
    except ValueError:
        raise SettingsError(f"--{field.name}: cannot parse {text!r}") from None
    return text


def parse_flag_strings(args) -> dict:
    """Setting values from run_finetuning command-line flags ("--name=value", "--[no]name").

    Later flags override earlier ones, as on a command line.
    """
    fields = {field.name: field for field in dataclasses.fields(FinetuningSettings)}
    values = {}
    for arg in args:
        name, has_value, text = arg.removeprefix("--").partition("=")
        if not has_value:
            name, text = (name[2:], "false") if name not in fields else (name, "true")
        if not arg.startswith("--") or name not in fields:
            raise SettingsError(f"{arg}: not a run_finetuning flag (known: {sorted(fields)})")
        values[name] = _flag_value(fields[name], text)
    return values


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
    task_name: str | None = None
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    word_column: int = 0
    label_column: int = -1
    label_encoding: str = "BIOES"
    # Model.
    init_checkpoint: str | None = None
    vocab_file: str | None = None
    do_lower_case: bool | None = None
    model_dir: str | None = None
    max_seq_length: int = 128
    # Optimization.
    learning_rate: float = 1e-4
    freeze_encoder: bool = False
    layerwise_lr_decay: float = 0.8
    layerwise_lr_decay_original_off_by_one: bool = False
    num_train_epochs: float = 3.0
    warmup_proportion: float = 0.1
    weight_decay_rate: float = 0.01
    train_batch_size: int = 32
    eval_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    seeds: tuple[int, ...] = (0,)
    max_train_steps: int | None = None
    iterations_per_loop: int = 1000
    # SQuAD.
    max_query_length: int = 64
    doc_stride: int = 128
    n_best_size: int = 20
    max_answer_length: int = 30
    # Scale-out (electra_tf.training.distribute's flags).
    distribution_strategy: str = "default"
    tpu: str | None = None
    num_gpus: int | None = None
    mixed_precision: str = "none"
    use_xla: bool | None = None

    def __post_init__(self):
        for name in _REQUIRED:
            _require(getattr(self, name), name, "is required")
        object.__setattr__(self, "task_name", canonical_task_name(self.task_name))
        object.__setattr__(self, "seeds", parse_seeds(self.seeds))
        for name in ("data_dir", "train_file", "dev_file", "test_file", "init_checkpoint"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        self._check_data_sources()
        self._check_numbers()

    def _check_data_sources(self):
        _require(
            self.label_encoding in LABEL_ENCODINGS,
            "label_encoding",
            f"must be one of {LABEL_ENCODINGS}, got {self.label_encoding!r}",
        )
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
        _require(
            self.mixed_precision in MIXED_PRECISIONS,
            "mixed_precision",
            f"must be one of {MIXED_PRECISIONS}, got {self.mixed_precision!r}",
        )

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
        """Writes the settings as JSON (finetuning_settings.json's format)."""
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=1) + "\n")

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
