"""Transformer hyperparameters for ELECTRA encoders, with the paper's sizes as presets."""

import dataclasses
import json
import math
import numbers

import tensorflow as tf

from electra_tf.files import write_json


class ConfigError(ValueError):
    """An ElectraConfig value (or a config.json) is of the wrong type or out of range."""


# Upper bounds well above every released ELECTRA/BERT size; a value beyond them is a typo
# (or a field in the wrong place) that would otherwise surface as an out-of-memory crash.
_SIZE_LIMITS = {
    "vocab_size": 1 << 24,
    "hidden_size": 1 << 16,
    "num_hidden_layers": 1024,
    "num_attention_heads": 1024,
    "intermediate_size": 1 << 18,
    "embedding_size": 1 << 16,
    "max_position_embeddings": 1 << 20,
    "type_vocab_size": 1024,
}


def _checked_size(name, value, upper):
    # bool is an int subclass: `True` for a size is a mistake, not 1.
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ConfigError(
            f"ElectraConfig.{name} must be an integer, got {value!r} "
            f"({type(value).__name__}); write it as a plain number, e.g. 256"
        )
    if not 1 <= value <= upper:
        raise ConfigError(f"ElectraConfig.{name} must be from 1 to {upper}, got {value}")
    return int(value)


def _checked_real(name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ConfigError(
            f"ElectraConfig.{name} must be a number, got {value!r} ({type(value).__name__})"
        )
    return float(value)


@dataclasses.dataclass(frozen=True)
class ElectraConfig:
    """Hyperparameters of one transformer encoder (generator or discriminator).

    Field names follow the original `BertConfig` so configs read from released
    checkpoints (and HF `config.json`) map one to one.
    """

    vocab_size: int = 30522
    hidden_size: int = 256
    num_hidden_layers: int = 12
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    # None means "same as hidden_size"; ELECTRA-Small factorizes to 128.
    embedding_size: int | None = None
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        for name, upper in _SIZE_LIMITS.items():
            value = getattr(self, name)
            if value is None and name == "embedding_size":
                continue
            object.__setattr__(self, name, _checked_size(name, value, upper))
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = _checked_real(name, getattr(self, name))
            if not 0.0 <= value < 1.0:
                raise ConfigError(
                    f"ElectraConfig.{name} must be in [0, 1) (a dropout probability; 1 drops "
                    f"everything), got {value!r}"
                )
            object.__setattr__(self, name, value)
        for name in ("initializer_range", "layer_norm_eps"):
            value = _checked_real(name, getattr(self, name))
            if not 0.0 < value < math.inf:
                raise ConfigError(f"ElectraConfig.{name} must be positive, got {value!r}")
            object.__setattr__(self, name, value)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"ElectraConfig.hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}; choose heads that divide it"
            )
        if self.hidden_act != "gelu":
            raise ConfigError(
                f"ElectraConfig.hidden_act must be 'gelu' (exact erf GELU, the only one "
                f"supported), got {self.hidden_act!r}"
            )

    @property
    def embedding_dim(self) -> int:
        return self.hidden_size if self.embedding_size is None else self.embedding_size

    def replace(self, **changes) -> "ElectraConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ElectraConfig":
        """A config from a dict of field values; raises ConfigError on unknown fields."""
        if not isinstance(values, dict):
            raise ConfigError(
                f"An ElectraConfig is a JSON object of fields, got a {type(values).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"Unknown ElectraConfig fields {unknown}; known fields: {sorted(known)}"
            )
        return cls(**values)

    def save(self, path: str) -> None:
        """Writes the config as JSON, atomically (a crash leaves the old file or the new)."""
        write_json(path, self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str) -> "ElectraConfig":
        """Reads a config.json; a bad file is a ConfigError naming it."""
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"Model config {path} does not exist")
        with tf.io.gfile.GFile(path, "rb") as f:
            raw = f.read()
        try:
            values = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(
                f"Model config {path} is not valid JSON ({e}); restore it or write it again "
                "with save_pretrained"
            ) from None
        try:
            return cls.from_dict(values)
        except ConfigError as e:
            raise ConfigError(f"Model config {path}: {e}") from None


def _sized(
    hidden_size: int, num_hidden_layers: int, embedding_size: int | None = None, **overrides
) -> ElectraConfig:
    # The original derives heads and FFN width from the hidden size
    # (util/training_utils.get_bert_config).
    values = dict(
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=max(1, hidden_size // 64),
        intermediate_size=4 * hidden_size,
        embedding_size=embedding_size,
    )
    values.update(overrides)
    return ElectraConfig(**values)


# Discriminator sizes of the paper (Table 6) and of the released "++" models,
# which share these architectures and differ only in pre-training
# hyperparameters (see configs/*_plus_plus.flags).
PRESETS = {
    "small": dict(hidden_size=256, num_hidden_layers=12, embedding_size=128),
    "base": dict(hidden_size=768, num_hidden_layers=12),
    "large": dict(hidden_size=1024, num_hidden_layers=24),
}


def preset(model_size: str, **overrides) -> ElectraConfig:
    """The discriminator config of a named size, with field overrides."""
    if model_size not in PRESETS:
        raise ValueError(f"Unknown model_size {model_size!r}; choose one of {sorted(PRESETS)}")
    values = dict(PRESETS[model_size])
    values.update({k: v for k, v in overrides.items() if k in ("hidden_size", "num_hidden_layers")})
    config = _sized(**values)
    rest = {k: v for k, v in overrides.items() if k not in ("hidden_size", "num_hidden_layers")}
    return config.replace(**rest) if rest else config


def generator_config(
    discriminator: ElectraConfig,
    hidden_fraction: float,
    layers_fraction: float,
    untied_embeddings: bool,
) -> ElectraConfig:
    """The generator's config, derived from the discriminator's as the original does.

    Heads and FFN width follow the generator's own hidden size. With tied
    embeddings the generator reads the discriminator's embedding table, so it
    keeps the discriminator's embedding size; untied, it gets its own table of
    its hidden size.
    """
    if not 0.0 < hidden_fraction <= 1.0 or not 0.0 < layers_fraction <= 1.0:
        raise ValueError(
            f"generator_hidden_size ({hidden_fraction}) and generator_layers "
            f"({layers_fraction}) are fractions of the discriminator and must be in (0, 1]"
        )
    hidden = int(round(discriminator.hidden_size * hidden_fraction))
    layers = max(1, int(round(discriminator.num_hidden_layers * layers_fraction)))
    heads = max(1, hidden // 64)
    if hidden % heads:
        raise ValueError(f"generator hidden size {hidden} is not divisible by its {heads} heads")
    return discriminator.replace(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        embedding_size=None if untied_embeddings else discriminator.embedding_dim,
    )
