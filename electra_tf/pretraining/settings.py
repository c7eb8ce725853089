"""`PretrainingSettings`: everything a pre-training run is told, validated, as one object.

The fields are run_pretraining's flags, with google-research/electra's names
and defaults (configure_pretraining.py): the flags are defined from these
fields, and the settings are read from the flags, from a list of flag
strings, or from a model_dir's pretraining_settings.json.

    settings = PretrainingSettings(
        pretrain_tfrecords="data/pretrain_tfrecords/pretrain_data.tfrecord*",
        vocab_file="data/vocab.txt",
        model_dir="runs/electra_small",
        num_train_steps=1000,
    )
    discriminator, generator = settings.model_configs(vocab_size=30522)
"""

import dataclasses
import json

import tensorflow as tf
from absl import flags, logging

from electra_tf import files
from electra_tf.filenames import PRETRAINING_SETTINGS_FILE
from electra_tf.model import config as config_lib
from electra_tf.pretraining import model as pretraining_model
from electra_tf.pretraining import two_stage
from electra_tf.training import flag_fields
from electra_tf.training.flag_fields import distributed, setting

# A resumed run must build the architecture it checkpointed: these must match.
ARCHITECTURE_FIELDS = (
    "model_size",
    "model_hparam_overrides",
    "embedding_size",
    "max_seq_length",
    "generator_hidden_size",
    "generator_layers",
    "untied_generator_embeddings",
    "objective",
    "generator_training",
    "uniform_generator",
    "untied_generator",
    "embedding_sharing",
)
_REQUIRED_FIELDS = ("pretrain_tfrecords", "vocab_file", "model_dir")
# The key of pretraining_settings.json holding the vocabulary's hash (no setting).
VOCAB_SHA256_KEY = "vocab_sha256"


class SettingsError(ValueError):
    """A setting is missing or out of range; the message names it as its flag (--name)."""


@dataclasses.dataclass(frozen=True)
class PretrainingSettings:
    """run_pretraining's flags as a validated, immutable object (see the module docstring).

    Raises SettingsError naming the flag when a value is out of range.
    `pretrain_tfrecords`, `vocab_file` and `model_dir` are required only to
    train (`require_inputs`), so that a converted model_dir's settings file,
    which holds the architecture alone, still reads.
    """

    # Data and output.
    pretrain_tfrecords: str | None = setting(
        None,
        flags.DEFINE_string,
        "Comma-separated globs of pre-training TFRecords "
        "(written by electra_tf.build_pretraining_dataset or the original code).",
    )
    vocab_file: str | None = setting(
        None, flags.DEFINE_string, "The WordPiece vocabulary the data was built with."
    )
    model_dir: str | None = setting(
        None, flags.DEFINE_string, "Checkpoints, TensorBoard logs and the final discriminator."
    )
    # Model.
    model_size: str = setting(
        "small", flags.DEFINE_enum, "Discriminator size.", sorted(config_lib.PRESETS)
    )
    model_hparam_overrides: str = setting(
        "{}",
        flags.DEFINE_string,
        "JSON dict overriding ElectraConfig fields, e.g. "
        '{"hidden_size": 128, "num_hidden_layers": 2}.',
    )
    embedding_size: int | None = setting(
        None, flags.DEFINE_integer, "Embedding size (default: the size's own)."
    )
    vocab_size: int | None = setting(
        None, flags.DEFINE_integer, "Must equal the vocab file's size when given."
    )
    max_seq_length: int = setting(
        128, flags.DEFINE_integer, "Sequence length the data was built with."
    )
    generator_hidden_size: float = setting(
        0.25, flags.DEFINE_float, "Generator hidden size, fraction of D's."
    )
    generator_layers: float = setting(1.0, flags.DEFINE_float, "Generator depth, fraction of D's.")
    untied_generator_embeddings: bool = setting(
        False,
        flags.DEFINE_bool,
        "Give G its own embedding block (an alias of --embedding_sharing=none).",
    )
    # Pre-training variants (docs/pretraining_variants.md).
    objective: str = setting(
        "electra",
        flags.DEFINE_enum,
        "electra (RTD), electra_15 (RTD loss on masked positions only), replace_mlm, "
        "all_tokens_mlm, mlm (BERT, no generator) or electric.",
        list(pretraining_model.OBJECTIVES),
    )
    generator_training: str = setting(
        "mle",
        flags.DEFINE_enum,
        "mle (joint MLM), two_stage (G alone, then D from G with G frozen) or "
        "adversarial (REINFORCE, G maximizes the RTD loss).",
        list(pretraining_model.GENERATOR_TRAINING),
    )
    two_stage_generator_fraction: float = setting(
        0.5,
        flags.DEFINE_float,
        "two_stage: fraction of --num_train_steps that trains the generator.",
    )
    uniform_generator: bool = setting(
        False, flags.DEFINE_bool, "Replace masked tokens uniformly at random."
    )
    untied_generator: bool = setting(
        True,
        flags.DEFINE_bool,
        "False: G and D share all weights (same size; an alias of --embedding_sharing=all).",
    )
    embedding_sharing: str | None = setting(
        None,
        flags.DEFINE_enum,
        "none, embeddings (default), all, or gdes (DeBERTaV3 gradient-disentangled).",
        list(pretraining_model.EMBEDDING_SHARING),
    )
    # Objective.
    mask_prob: float = setting(0.15, flags.DEFINE_float, "Fraction of tokens masked per sequence.")
    max_predictions_per_seq: int | None = setting(
        None,
        flags.DEFINE_integer,
        "Masked positions per sequence (default int((mask_prob+0.005)*max_seq_length)).",
    )
    gen_weight: float = setting(1.0, flags.DEFINE_float, "Weight of the generator's MLM loss.")
    disc_weight: float = setting(50.0, flags.DEFINE_float, "Weight of the discriminator's loss.")
    temperature: float = setting(1.0, flags.DEFINE_float, "Sampling temperature of the generator.")
    disallow_correct: bool = setting(False, flags.DEFINE_bool, "Never sample the original token.")
    # Optimization.
    learning_rate: float = setting(5e-4, flags.DEFINE_float, "Peak learning rate.")
    lr_decay_power: float = setting(
        1.0, flags.DEFINE_float, "Power of the polynomial decay (1: linear)."
    )
    weight_decay_rate: float = setting(0.01, flags.DEFINE_float, "Decoupled weight decay.")
    num_warmup_steps: int = setting(10000, flags.DEFINE_integer, "Linear warmup steps.")
    num_train_steps: int = setting(1000000, flags.DEFINE_integer, "Total optimizer steps.")
    train_batch_size: int = setting(128, flags.DEFINE_integer, "Global batch per optimizer step.")
    gradient_accumulation_steps: int = setting(
        1, flags.DEFINE_integer, "Micro-batches per optimizer step."
    )
    # Loop, checkpoints, logging.
    iterations_per_loop: int = setting(
        200, flags.DEFINE_integer, "Steps per host call; also the logging period."
    )
    save_checkpoints_steps: int = setting(1000, flags.DEFINE_integer, "Checkpoint period in steps.")
    keep_checkpoint_max: int = setting(5, flags.DEFINE_integer, "Checkpoints kept (0 keeps all).")
    seed: int = setting(
        0, flags.DEFINE_integer, "Seed of initialization, data order, masking and sampling."
    )
    max_train_steps_this_run: int | None = setting(
        None,
        flags.DEFINE_integer,
        "Stop (with a checkpoint) after this many steps in this process.",
    )
    # Scale-out (distribute.define_flags).
    distribution_strategy: str = distributed("default", flag_fields.STRATEGIES)
    tpu: str | None = distributed(None)
    num_gpus: int | None = distributed(None)
    mixed_precision: str = distributed("none", flag_fields.MIXED_PRECISIONS)
    use_xla: bool | None = distributed(None)

    def __post_init__(self):
        if isinstance(self.model_hparam_overrides, dict):
            # The Python API may pass a dict; the flag and the settings file hold JSON.
            overrides = json.dumps(self.model_hparam_overrides, sort_keys=True)
            object.__setattr__(self, "model_hparam_overrides", overrides)
        flag_fields.check_choices(self, SettingsError)
        self._validate_ranges()
        self.hparam_overrides()

    def _validate_ranges(self):
        _require(0.0 < self.mask_prob < 1.0, "mask_prob", "must be in (0, 1)")
        _require(self.temperature > 0.0, "temperature", "must be positive")
        _require(self.num_train_steps > 0, "num_train_steps", "must be positive")
        _require(self.num_warmup_steps >= 0, "num_warmup_steps", "must be >= 0")
        _require(self.learning_rate > 0.0, "learning_rate", "must be positive")
        _require(self.iterations_per_loop > 0, "iterations_per_loop", "must be positive")
        _require(self.save_checkpoints_steps > 0, "save_checkpoints_steps", "must be positive")
        _require(self.train_batch_size > 0, "train_batch_size", "must be positive")
        _require(
            self.gradient_accumulation_steps > 0, "gradient_accumulation_steps", "must be positive"
        )
        _require(self.max_seq_length > 2, "max_seq_length", "must leave room for [CLS] and [SEP]")
        for name in ("generator_hidden_size", "generator_layers"):
            _require(
                0.0 < getattr(self, name) <= 1.0,
                name,
                "is a fraction of the discriminator, in (0, 1]",
            )
        if self.max_predictions_per_seq is not None:
            _require(
                0 < self.max_predictions_per_seq <= self.max_seq_length,
                "max_predictions_per_seq",
                "must be in [1, max_seq_length]",
            )

    def require_inputs(self):
        """Raises SettingsError unless the data, vocabulary and model_dir are given."""
        for name in _REQUIRED_FIELDS:
            _require(getattr(self, name), name, "is required")

    # ------------------------------------------------------------ derived values
    def hparam_overrides(self) -> dict:
        """`model_hparam_overrides` parsed (a JSON object of ElectraConfig fields)."""
        try:
            overrides = json.loads(self.model_hparam_overrides)
        except json.JSONDecodeError as e:
            raise SettingsError(f"--model_hparam_overrides is not valid JSON: {e}") from e
        _require(isinstance(overrides, dict), "model_hparam_overrides", "must be a JSON object")
        return overrides

    @property
    def max_predictions(self) -> int:
        """Masked positions per sequence: the flag, else the original's rule."""
        if self.max_predictions_per_seq is not None:
            return self.max_predictions_per_seq
        return int((self.mask_prob + 0.005) * self.max_seq_length)

    @property
    def two_stage_switch_step(self) -> int:
        return two_stage.switch_step(self.two_stage_generator_fraction, self.num_train_steps)

    @property
    def generator_embeddings_untied(self) -> bool:
        return self.untied_generator_embeddings or self.embedding_sharing == "none"

    def model_configs(self, vocab_size: int):
        """(discriminator config, generator config) for a vocabulary of `vocab_size`.

        >>> d, g = PretrainingSettings(generator_hidden_size=0.5).model_configs(1000)
        >>> (d.hidden_size, g.hidden_size)
        (256, 128)
        """
        overrides = self.hparam_overrides()
        if self.embedding_size is not None:
            overrides["embedding_size"] = self.embedding_size
        overrides["vocab_size"] = vocab_size
        try:
            discriminator = config_lib.preset(self.model_size, **overrides)
        except (TypeError, ValueError) as e:
            raise SettingsError(f"--model_size/--model_hparam_overrides: {e}") from e
        _require(
            self.max_seq_length <= discriminator.max_position_embeddings,
            "max_seq_length",
            f"{self.max_seq_length} exceeds the model's max_position_embeddings "
            f"({discriminator.max_position_embeddings})",
        )
        generator = config_lib.generator_config(
            discriminator,
            self.generator_hidden_size,
            self.generator_layers,
            self.generator_embeddings_untied,
        )
        return discriminator, generator

    def load_vocabulary(self) -> dict:
        """The vocabulary of `vocab_file`, checked against `vocab_size` when that is given."""
        from electra_tf.data import tokenization

        try:
            vocab = tokenization.load_vocab(self.vocab_file)
        except (FileNotFoundError, ValueError) as e:
            raise SettingsError(f"--vocab_file: {e}") from e
        if self.vocab_size is not None:
            _require(
                self.vocab_size == len(vocab),
                "vocab_size",
                f"is {self.vocab_size} but {self.vocab_file} has {len(vocab)} tokens",
            )
        return vocab

    def architecture(self) -> dict:
        """The fields a resumed run must share with the run it resumes."""
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}

    # ------------------------------------------------------------ files and flags
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def write(self, model_dir: str, vocab_sha256: str | None = None) -> str:
        """Writes <model_dir>/pretraining_settings.json atomically; returns its path.

        `vocab_sha256` (tokenization.vocab_sha256 of vocab_file) is kept beside the
        settings, so a resumed run can check it trains on the same vocabulary.
        """
        tf.io.gfile.makedirs(model_dir)
        path = f"{model_dir}/{PRETRAINING_SETTINGS_FILE}"
        values = self.to_dict()
        if vocab_sha256 is not None:
            values[VOCAB_SHA256_KEY] = vocab_sha256
        files.write_json(path, values, indent=2, sort_keys=True)
        return path

    @classmethod
    def read(cls, path: str) -> "PretrainingSettings":
        """Settings from a pretraining_settings.json, or from the model_dir holding one.

        Fields the file lacks (older runs, converted checkpoints) take their
        defaults; keys that are no setting are ignored with a warning.

        >>> PretrainingSettings.read("runs/electra_small").model_size  # doctest: +SKIP
        'small'
        """
        if not path.endswith(".json"):
            path = f"{path}/{PRETRAINING_SETTINGS_FILE}"
        with tf.io.gfile.GFile(path) as f:
            values = json.load(f)
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names - {VOCAB_SHA256_KEY})
        if unknown:
            logging.warning("%s: ignoring keys that are no setting: %s", path, unknown)
        return cls(**{k: v for k, v in values.items() if k in names})

    def check_resumable(self, model_dir: str, vocab_sha256: str | None = None) -> None:
        """Raises SettingsError when model_dir holds a run of another architecture or vocabulary.

        `vocab_sha256` is compared with the hash the run saved (runs saved before
        hashes were kept are not checked).
        """
        path = f"{model_dir}/{PRETRAINING_SETTINGS_FILE}"
        if not tf.io.gfile.exists(path):
            return
        with tf.io.gfile.GFile(path) as f:
            try:
                saved = json.load(f)
            except json.JSONDecodeError as e:
                raise SettingsError(
                    f"--model_dir: {path} is not valid JSON ({e}). Restore it from a copy, or "
                    "use a new --model_dir."
                ) from None
        saved_hash = saved.get(VOCAB_SHA256_KEY)
        if vocab_sha256 is not None and saved_hash is not None and saved_hash != vocab_sha256:
            raise SettingsError(
                f"--vocab_file: {self.vocab_file} is not the vocabulary the run in {model_dir} "
                f"was trained with ({saved.get('vocab_file')}, sha256 {saved_hash[:12]}..., "
                f"recorded in {path}; this one has sha256 {vocab_sha256[:12]}...). Pass that "
                "vocabulary, or use a new --model_dir."
            )
        differing = [
            f"--{name}: checkpoint has {saved[name]!r}, settings say {value!r}"
            for name, value in self.architecture().items()
            if name in saved and not _same_setting(name, saved[name], value)
        ]
        if differing:
            raise SettingsError(
                f"{model_dir} holds a run with another architecture: "
                + "; ".join(differing)
                + ". Use a new --model_dir or the original flags."
            )

    @classmethod
    def from_flag_values(cls, flag_values) -> "PretrainingSettings":
        """Settings from parsed absl flags (defined by `flag_fields.define_flags`)."""
        return cls(**flag_fields.values_from_flags(cls, flag_values))

    @classmethod
    def from_flags(cls, args) -> "PretrainingSettings":
        """Settings from run_pretraining command-line flags, without touching absl's FLAGS.

        >>> PretrainingSettings.from_flags(["--num_train_steps=10", "--nountied_generator"])
        ... # doctest: +ELLIPSIS
        PretrainingSettings(...)
        """
        return cls.from_flag_values(
            flag_fields.parse_flags(cls, "run_pretraining", args, SettingsError)
        )


def _same_setting(name, saved, current):
    if name == "model_hparam_overrides":
        # The same JSON object written with other spacing or key order is the same setting.
        return json.loads(saved or "{}") == json.loads(current or "{}")
    return saved == current


def _fail(name, message):
    raise SettingsError(f"--{name}: {message}")


def _require(condition, name, message):
    if not condition:
        _fail(name, message)
