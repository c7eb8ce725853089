"""keras-hub ELECTRA presets <-> Bundle, written and read with h5py alone (no keras-hub import).

A preset directory is what `keras_hub.models.ElectraBackbone.save_to_preset` and
`keras_hub.models.ElectraTokenizer.save_to_preset` write, and what their `from_preset(dir)`
load: `config.json` (the backbone as a serialized Keras object), `metadata.json`,
`model.weights.h5` (Keras's weights file: one HDF5 group per layer, its variables numbered
under `vars/`), `tokenizer.json` and `assets/tokenizer/vocabulary.txt`.

What keras-hub's backbone does differently from ours (and the original):

* GELU: keras-hub's feed-forward uses the tanh approximation, ours the exact erf form. The
  weights convert exactly; the outputs differ by the GELU difference (README, conversion).
* Pooler: keras-hub adds `pooled_dense` (tanh over [CLS]), which ELECTRA has not. It is
  written with keras-hub's initialization (truncated normal, stddev `initializer_range`,
  seed 0; zero bias), as keras-hub's own converted ELECTRA presets carry an untrained one, and
  ignored when reading.
* One dropout rate for hidden states and attention, and LayerNorm epsilon fixed at 1e-12:
  a config that needs others cannot be written.
"""

import datetime
import io
import json
import os
import re

import h5py
import keras
import numpy as np

from electra_tf import files
from electra_tf.convert import layout
from electra_tf.convert.report import ConversionError, MismatchReport
from electra_tf.data import tokenization
from electra_tf.filenames import (
    CONFIG_FILE,
    KERAS_HUB_METADATA_FILE,
    KERAS_HUB_TOKENIZER_FILE,
    KERAS_HUB_VOCABULARY_FILE,
    KERAS_HUB_WEIGHTS_FILE,
)
from electra_tf.model.config import ElectraConfig

BACKBONE = "keras_hub>ElectraBackbone"
TOKENIZER = "keras_hub>ElectraTokenizer"
# The keras-hub release whose preset format this module writes (metadata.json says so).
KERAS_HUB_VERSION = "0.32.0"
LAYER_NORM_EPS = 1e-12

# Our embedding variables -> keras-hub's layer (its group in model.weights.h5) and index.
_EMBEDDINGS = {
    "word_embeddings": ("reversible_embedding", 0),
    "position_embeddings": ("position_embedding", 0),
    "token_type_embeddings": ("embedding", 0),
    "LayerNorm/gamma": ("layer_normalization", 0),
    "LayerNorm/beta": ("layer_normalization", 1),
}
# A transformer layer's parts (original scopes) -> keras-hub's TransformerEncoder attributes.
_LAYER_PARTS = {
    "attention/self/query": "_self_attention_layer/query_dense",
    "attention/self/key": "_self_attention_layer/key_dense",
    "attention/self/value": "_self_attention_layer/value_dense",
    "attention/output/dense": "_self_attention_layer/output_dense",
    "attention/output/LayerNorm": "_self_attention_layer_norm",
    "intermediate/dense": "_feedforward_intermediate_dense",
    "output/dense": "_feedforward_output_dense",
    "output/LayerNorm": "_feedforward_layer_norm",
}
_VARIABLE_INDEX = {"kernel": 0, "bias": 1, "gamma": 0, "beta": 1}
_LAYER_NAME = re.compile(r"electra/encoder/layer_(\d+)/(.+)/(kernel|bias|gamma|beta)$")


def _numbered(base: str, index: int) -> str:
    """Keras names the n-th layer of one class `base`, `base_1`, `base_2`, ..."""
    return base if index == 0 else f"{base}_{index}"


def _pooler_group(config: ElectraConfig) -> str:
    """The pooler is the backbone's second Dense when the embeddings are projected."""
    has_projection = config.embedding_dim != config.hidden_size
    return f"layers/{_numbered('dense', int(has_projection))}"


def weight_paths(config: ElectraConfig) -> dict[str, tuple[str, str]]:
    """Original name -> (its `vars` group in model.weights.h5, the dataset name in it)."""
    paths = {}
    for name in layout.encoder_shapes(config, "electra", "electra"):
        if name.startswith("electra/embeddings/"):
            group, index = _EMBEDDINGS[name.removeprefix("electra/embeddings/")]
            group = f"layers/{group}"
        elif name.startswith("electra/embeddings_project/"):
            group, index = "layers/dense", _VARIABLE_INDEX[name.rsplit("/", 1)[1]]
        else:
            layer, part, variable = _LAYER_NAME.match(name).groups()
            group = f"layers/{_numbered('transformer_encoder', int(layer))}/{_LAYER_PARTS[part]}"
            index = _VARIABLE_INDEX[variable]
        paths[name] = (f"{group}/vars", str(index))
    return paths


def keras_hub_shape(name: str, shape: tuple, config: ElectraConfig) -> tuple:
    """keras-hub's shape of one of our variables: attention splits the heads out."""
    heads = config.num_attention_heads
    head_size = config.hidden_size // heads
    if re.search(r"attention/self/\w+/kernel$", name):
        return (shape[0], heads, head_size)
    if re.search(r"attention/self/\w+/bias$", name):
        return (heads, head_size)
    if name.endswith("attention/output/dense/kernel"):
        return (heads, head_size, shape[1])
    return tuple(shape)


# ---- configs ----


def backbone_config(config: ElectraConfig) -> dict:
    """config.json of an ElectraBackbone with `config`'s sizes."""
    problems = []
    if config.attention_probs_dropout_prob != config.hidden_dropout_prob:
        problems.append(
            f"attention_probs_dropout_prob {config.attention_probs_dropout_prob} differs from "
            f"hidden_dropout_prob {config.hidden_dropout_prob} (keras-hub has one dropout rate)"
        )
    if config.layer_norm_eps != LAYER_NORM_EPS:
        problems.append(f"layer_norm_eps is {config.layer_norm_eps}, keras-hub's is fixed at 1e-12")
    if problems:
        raise ConversionError(
            "Cannot write a keras-hub preset: " + "; ".join(problems) + ". Convert to HF instead."
        )
    return {
        "module": "keras_hub.src.models.electra.electra_backbone",
        "class_name": "ElectraBackbone",
        "config": {
            "name": "electra_backbone",
            "trainable": True,
            "dtype": _dtype_policy("float32"),
            "vocab_size": config.vocab_size,
            "num_layers": config.num_hidden_layers,
            "num_heads": config.num_attention_heads,
            "hidden_dim": config.hidden_size,
            "embedding_dim": config.embedding_dim,
            "intermediate_dim": config.intermediate_size,
            "dropout": config.hidden_dropout_prob,
            "max_sequence_length": config.max_position_embeddings,
            "num_segments": config.type_vocab_size,
        },
        "registered_name": BACKBONE,
    }


def electra_config(backbone: dict, source: str) -> ElectraConfig:
    """Our ElectraConfig from an ElectraBackbone's config.json."""
    if backbone.get("registered_name") != BACKBONE:
        raise ConversionError(
            f"{source}/{CONFIG_FILE} describes {backbone.get('registered_name')!r}, not "
            f"{BACKBONE!r}: only keras-hub ELECTRA backbones convert"
        )
    c = backbone["config"]
    try:
        return ElectraConfig(
            vocab_size=c["vocab_size"],
            hidden_size=c["hidden_dim"],
            num_hidden_layers=c["num_layers"],
            num_attention_heads=c["num_heads"],
            intermediate_size=c["intermediate_dim"],
            embedding_size=None if c["embedding_dim"] == c["hidden_dim"] else c["embedding_dim"],
            hidden_dropout_prob=c.get("dropout", 0.1),
            attention_probs_dropout_prob=c.get("dropout", 0.1),
            max_position_embeddings=c.get("max_sequence_length", 512),
            type_vocab_size=c.get("num_segments", 2),
        )
    except (KeyError, ValueError) as e:
        raise ConversionError(
            f"{source}/{CONFIG_FILE} is not a complete ElectraBackbone config ({e!r}); "
            "save the backbone again with save_to_preset"
        ) from None


def tokenizer_config(do_lower_case: bool, strip_accents: bool | None = None) -> dict:
    """tokenizer.json of an ElectraTokenizer that splits text as our FullTokenizer does."""
    return {
        "module": "keras_hub.src.models.electra.electra_tokenizer",
        "class_name": "ElectraTokenizer",
        "config": {
            "name": "electra_tokenizer",
            "trainable": True,
            "dtype": _dtype_policy("int32"),
            "config_file": KERAS_HUB_TOKENIZER_FILE,
            "vocabulary": None,
            "sequence_length": None,
            "lowercase": do_lower_case,
            "strip_accents": tokenization.resolve_strip_accents(do_lower_case, strip_accents),
            "split": True,
            "suffix_indicator": "##",
            "oov_token": "[UNK]",
            "special_tokens": None,
            "special_tokens_in_strings": False,
        },
        "registered_name": TOKENIZER,
    }


def _dtype_policy(name: str) -> dict:
    return {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": name},
        "registered_name": None,
    }


# ---- writing ----


def write(
    bundle: layout.Bundle,
    directory: str,
    vocab_file: str,
    do_lower_case: bool = True,
    overwrite: bool = False,
) -> None:
    """Writes the bundle's discriminator encoder as a keras-hub ElectraBackbone +
    ElectraTokenizer preset in `directory` (which must be empty unless `overwrite`)."""
    files.check_output_dir(directory, "--output_dir", overwrite)
    config = bundle.discriminator
    vocab = tokenization.load_vocab(vocab_file)
    layout.validate(
        bundle,
        "the source",
        f"a keras-hub preset {directory}",
        vocab_size=len(vocab),
        discriminator_head=False,
        allow_unexpected=True,
    )
    backbone = backbone_config(config)
    weights = _weights_file(bundle.weights, config)
    os.makedirs(os.path.join(directory, os.path.dirname(KERAS_HUB_VOCABULARY_FILE)), exist_ok=True)
    files.write_text(
        os.path.join(directory, KERAS_HUB_VOCABULARY_FILE), "".join(t + "\n" for t in vocab)
    )
    files.write_json(
        os.path.join(directory, KERAS_HUB_TOKENIZER_FILE), tokenizer_config(do_lower_case), indent=4
    )
    files.write_bytes(os.path.join(directory, KERAS_HUB_WEIGHTS_FILE), weights)
    files.write_json(os.path.join(directory, KERAS_HUB_METADATA_FILE), _metadata(config), indent=4)
    # Last: config.json is what makes the folder a preset to keras-hub, so an interrupted
    # write never looks like a complete one.
    files.write_json(os.path.join(directory, CONFIG_FILE), backbone, indent=4)


def _weights_file(weights: dict, config: ElectraConfig) -> bytes:
    """model.weights.h5 as bytes: every encoder variable in keras-hub's shape, plus the pooler."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        for name, (group, index) in weight_paths(config).items():
            value = np.asarray(weights[name], np.float32)
            h5.require_group(group)[index] = value.reshape(
                keras_hub_shape(name, value.shape, config)
            )
        kernel, bias = _pooler(config)
        pooler = h5.require_group(f"{_pooler_group(config)}/vars")
        pooler["0"], pooler["1"] = kernel, bias
    return buffer.getvalue()


def _pooler(config: ElectraConfig) -> tuple[np.ndarray, np.ndarray]:
    """keras-hub's initialization of `pooled_dense`, seeded so that a conversion repeats."""
    initializer = keras.initializers.TruncatedNormal(stddev=config.initializer_range, seed=0)
    kernel = initializer((config.hidden_size, config.hidden_size), dtype="float32")
    return keras.ops.convert_to_numpy(kernel), np.zeros(config.hidden_size, np.float32)


def _metadata(config: ElectraConfig) -> dict:
    count = sum(
        int(np.prod(s)) for s in layout.encoder_shapes(config, "electra", "electra").values()
    )
    return {
        "keras_version": keras.version(),
        "keras_hub_version": KERAS_HUB_VERSION,
        "parameter_count": count + config.hidden_size * (config.hidden_size + 1),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "tasks": [],
    }


# ---- reading ----


def read(directory: str) -> layout.Bundle:
    """The encoder of a keras-hub ElectraBackbone preset as a Bundle (the pooler is left out)."""
    config = electra_config(_read_json(directory, CONFIG_FILE), directory)
    path = os.path.join(directory, KERAS_HUB_WEIGHTS_FILE)
    shapes = layout.encoder_shapes(config, "electra", "electra")
    report = MismatchReport(path, f"the ElectraBackbone its {CONFIG_FILE} describes")
    weights = {}
    try:
        with h5py.File(path, "r") as h5:
            for name, (group, index) in weight_paths(config).items():
                expected = keras_hub_shape(name, shapes[name], config)
                dataset = h5.get(f"{group}/{index}")
                if dataset is None:
                    report.missing(f"{name} ({group}/{index})", expected)
                elif tuple(dataset.shape) != expected:
                    report.shape(f"{name} ({group}/{index})", expected, dataset.shape)
                else:
                    weights[name] = np.asarray(dataset, np.float32).reshape(shapes[name])
    except OSError as e:
        raise ConversionError(
            f"{path} is not a readable HDF5 file ({e}): it is damaged or incomplete; "
            "save the preset again"
        ) from None
    report.raise_if_any()
    return layout.Bundle(weights=weights, discriminator=config)


def vocabulary_file(directory: str) -> str | None:
    """The preset's WordPiece vocabulary, or None if it has no tokenizer."""
    path = os.path.join(directory, KERAS_HUB_VOCABULARY_FILE)
    return path if os.path.isfile(path) else None


def do_lower_case(directory: str) -> bool | None:
    """The preset tokenizer's `lowercase`, or None if it has no tokenizer.json."""
    if not os.path.isfile(os.path.join(directory, KERAS_HUB_TOKENIZER_FILE)):
        return None
    tokenizer = _read_json(directory, KERAS_HUB_TOKENIZER_FILE)
    if tokenizer.get("registered_name") != TOKENIZER:
        raise ConversionError(
            f"{directory}/{KERAS_HUB_TOKENIZER_FILE} describes "
            f"{tokenizer.get('registered_name')!r}, not {TOKENIZER!r}"
        )
    return bool(tokenizer["config"].get("lowercase", False))


def _read_json(directory: str, name: str) -> dict:
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConversionError(
            f"{path} is missing: a keras-hub preset holds {name} beside {KERAS_HUB_WEIGHTS_FILE}"
        ) from None
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path} is not valid JSON ({e}); save the preset again") from None
