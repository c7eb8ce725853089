"""ElectraConfig refuses wrong types and out-of-range values with a ConfigError naming the field,
and a bad config.json with one naming the file."""

import json

import numpy as np
import pytest

from electra_tf.model.config import ConfigError, ElectraConfig

TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)

BAD_VALUES = [
    ("vocab_size", 0, "vocab_size must be from 1"),
    ("vocab_size", 1 << 30, "vocab_size must be from 1 to"),
    ("hidden_size", "256", "hidden_size must be an integer, got '256'"),
    ("hidden_size", 32.0, "hidden_size must be an integer"),
    ("hidden_size", True, "hidden_size must be an integer, got True"),
    ("num_hidden_layers", -1, "num_hidden_layers must be from 1"),
    ("num_attention_heads", 3, "not divisible by num_attention_heads 3"),
    ("intermediate_size", None, "intermediate_size must be an integer"),
    ("max_position_embeddings", 0, "max_position_embeddings must be from 1"),
    ("type_vocab_size", False, "type_vocab_size must be an integer"),
    ("embedding_size", 0, "embedding_size must be from 1"),
    ("embedding_size", "128", "embedding_size must be an integer"),
    ("hidden_dropout_prob", 1.0, r"hidden_dropout_prob must be in \[0, 1\)"),
    ("hidden_dropout_prob", -0.1, r"hidden_dropout_prob must be in \[0, 1\)"),
    ("attention_probs_dropout_prob", float("nan"), r"attention_probs_dropout_prob must be in"),
    ("attention_probs_dropout_prob", "0.1", "attention_probs_dropout_prob must be a number"),
    ("initializer_range", 0.0, "initializer_range must be positive"),
    ("layer_norm_eps", float("inf"), "layer_norm_eps must be positive"),
    ("hidden_act", "relu", "hidden_act must be 'gelu'"),
]


@pytest.mark.parametrize(
    "field,value,message", BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES]
)
def test_bad_value_is_a_named_error(field, value, message):
    with pytest.raises(ConfigError, match=message):
        ElectraConfig(**{**TINY, field: value})


def test_config_error_is_a_value_error():
    # Callers that caught ValueError before the named error keep working.
    assert issubclass(ConfigError, ValueError)


def test_numpy_integers_and_int_probabilities_are_normalised():
    config = ElectraConfig(**{**TINY, "hidden_size": np.int64(32), "hidden_dropout_prob": 0})
    assert type(config.hidden_size) is int and type(config.hidden_dropout_prob) is float
    assert json.loads(json.dumps(config.to_dict()))["hidden_size"] == 32


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json", "is not valid JSON"),
        ('["a list"]', "JSON object of fields, got a list"),
        ('{"hidden_size": "32"}', "hidden_size must be an integer"),
        ('{"hidden_dropout_prob": 1}', "hidden_dropout_prob must be in"),
        ('{"hiden_size": 32}', "Unknown ElectraConfig fields"),
        (b"\xff\xfe\x00garbage", "is not valid JSON"),
    ],
    ids=["bad-json", "not-an-object", "string-size", "dropout-one", "unknown-field", "binary"],
)
def test_bad_config_file_names_the_file(tmp_path, text, message):
    path = tmp_path / "config.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        ElectraConfig.load(str(path))
    assert str(path) in str(raised.value)


def test_save_round_trips_and_leaves_no_temporary(tmp_path):
    config = ElectraConfig(**TINY)
    config.save(str(tmp_path / "config.json"))
    assert ElectraConfig.load(str(tmp_path / "config.json")) == config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
