"""Hugging Face ELECTRA checkpoints (safetensors + config.json) <-> Bundle, without torch.

Reads and writes `ElectraModel`, `ElectraForPreTraining` (discriminator),
`ElectraForMaskedLM` (generator) and `ElectraForTokenClassification`
directories. Weights are read from `model.safetensors` with
`safetensors.numpy`; a PyTorch `pytorch_model.bin` only through
`torch.load(weights_only=True)` (never a plain unpickle, which can run code).
"""

import json
import os

import numpy as np

from electra_tf.convert import layout
from electra_tf.convert.report import ConversionError, MismatchReport
from electra_tf.filenames import (
    CONFIG_FILE,
    HF_PYTORCH_FILE,
    HF_SAFETENSORS_FILE,
    HF_SAFETENSORS_INDEX_FILE,
    VOCAB_FILE,
)
from electra_tf.files import copy_file, write_bytes, write_json
from electra_tf.model.config import ConfigError, ElectraConfig

_LAYER_DENSES = (
    ("attention/self/query", "attention.self.query"),
    ("attention/self/key", "attention.self.key"),
    ("attention/self/value", "attention.self.value"),
    ("attention/output/dense", "attention.output.dense"),
    ("intermediate/dense", "intermediate.dense"),
    ("output/dense", "output.dense"),
)
_LAYER_NORMS = (
    ("attention/output/LayerNorm", "attention.output.LayerNorm"),
    ("output/LayerNorm", "output.LayerNorm"),
)


def _dense(pairs, ours, theirs):
    pairs.append((f"{ours}/kernel", f"{theirs}.weight", True))
    pairs.append((f"{ours}/bias", f"{theirs}.bias", False))


def _norm(pairs, ours, theirs):
    pairs.append((f"{ours}/gamma", f"{theirs}.weight", False))
    pairs.append((f"{ours}/beta", f"{theirs}.bias", False))


def encoder_pairs(config: ElectraConfig, scope: str, embeddings_scope: str, prefix: str):
    """(original name, HF key, transpose?) for one ElectraModel under `prefix`."""
    pairs = []
    base = f"{embeddings_scope}/embeddings"
    for name in ("word", "position", "token_type"):
        pairs.append(
            (f"{base}/{name}_embeddings", f"{prefix}embeddings.{name}_embeddings.weight", False)
        )
    _norm(pairs, f"{base}/LayerNorm", f"{prefix}embeddings.LayerNorm")
    if config.embedding_dim != config.hidden_size:
        _dense(pairs, f"{scope}/embeddings_project", f"{prefix}embeddings_project")
    for i in range(config.num_hidden_layers):
        for ours, theirs in _LAYER_DENSES:
            _dense(
                pairs, f"{scope}/encoder/layer_{i}/{ours}", f"{prefix}encoder.layer.{i}.{theirs}"
            )
        for ours, theirs in _LAYER_NORMS:
            _norm(pairs, f"{scope}/encoder/layer_{i}/{ours}", f"{prefix}encoder.layer.{i}.{theirs}")
    return pairs


def discriminator_head_pairs():
    pairs = []
    _dense(pairs, "discriminator_predictions/dense", "discriminator_predictions.dense")
    _dense(pairs, "discriminator_predictions/dense_1", "discriminator_predictions.dense_prediction")
    return pairs


def generator_head_pairs():
    pairs = []
    _dense(pairs, "generator_predictions/dense", "generator_predictions.dense")
    _norm(pairs, "generator_predictions/LayerNorm", "generator_predictions.LayerNorm")
    pairs.append(("generator_predictions/output_bias", "generator_lm_head.bias", False))
    return pairs


def token_head_pairs():
    pairs = []
    _dense(pairs, layout.TOKEN_HEAD, "classifier")
    return pairs


# ---- reading ----


def load_state_dict(directory: str) -> dict[str, np.ndarray]:
    """HF weights as numpy, safely: safetensors first, else torch.load(weights_only=True)."""
    st_path = os.path.join(directory, HF_SAFETENSORS_FILE)
    if os.path.exists(st_path):
        return _load_safetensors(st_path)
    index_path = os.path.join(directory, HF_SAFETENSORS_INDEX_FILE)
    if os.path.exists(index_path):
        out = {}
        for shard in _shard_paths(directory, index_path):
            out.update(_load_safetensors(shard))
        return out
    bin_path = os.path.join(directory, HF_PYTORCH_FILE)
    if os.path.exists(bin_path):
        return _load_torch_bin(bin_path)
    raise ConversionError(f"{directory} holds neither {HF_SAFETENSORS_FILE} nor {HF_PYTORCH_FILE}")


def _shard_paths(directory: str, index_path: str) -> list[str]:
    """The shard files a safetensors index names, each checked to lie inside `directory`."""
    fix = "download the index again from the model's repository"
    weight_map = _read_json_object(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConversionError(f"{index_path} has no weight_map of tensor -> shard file; {fix}")
    inside = os.path.realpath(directory)
    paths = []
    for shard in sorted({str(s) for s in weight_map.values()}):
        path = os.path.join(directory, shard)
        # realpath resolves `..`, absolute names and symlinks alike.
        if os.path.commonpath([inside, os.path.realpath(path)]) != inside:
            raise ConversionError(
                f"{index_path} names the shard {shard!r}, which lies outside {directory}: shard "
                f"files must be inside the model directory; {fix}"
            )
        if not os.path.isfile(path):
            raise ConversionError(
                f"{path} is missing: {index_path} names it as a shard; download it too"
            )
        paths.append(path)
    return paths


def _read_json_object(path: str) -> dict:
    """A JSON object from `path`, or a ConversionError naming the file."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        values = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path} is not valid JSON ({e}); download it again") from None
    if not isinstance(values, dict):
        raise ConversionError(
            f"{path} holds a JSON {type(values).__name__}, not an object; download it again"
        )
    return values


def _load_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError) as e:
        raise ConversionError(
            f"{path} is not a readable safetensors file ({str(e) or type(e).__name__}): it is "
            "damaged or incomplete; download it again"
        ) from None


def _load_torch_bin(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise ConversionError(
            f"{path} is a PyTorch pickle file. Reading it safely needs torch "
            "(torch.load(weights_only=True)), which is not installed; this converter never "
            "unpickles weight files itself, since a pickle can run arbitrary code. Install torch "
            "or convert the checkpoint to model.safetensors first."
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError (and others) for unsafe content
        raise ConversionError(
            f"Refused to load {path}: it is not a plain tensor checkpoint and loading it could "
            f"run code embedded in the file (torch.load(weights_only=True) said: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__})."
        ) from None
    if not isinstance(state, dict):
        raise ConversionError(
            f"Refused {path}: it holds a {type(state).__name__}, not a dict of tensors"
        )
    return {
        k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.cpu().numpy()
        for k, v in state.items()
    }


def read_config(directory: str) -> dict:
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(path):
        raise ConversionError(f"{path} does not exist; an HF model directory holds {CONFIG_FILE}")
    return _read_json_object(path)


def electra_config(hf: dict, source: str = CONFIG_FILE) -> ElectraConfig:
    """Our config from an HF ELECTRA config dict; `source` names it in errors."""
    try:
        return _electra_config(hf)
    except KeyError as e:
        raise ConversionError(f"{source} is not an HF ELECTRA config: it lacks {e}") from None
    except (ConfigError, ConversionError) as e:
        raise ConversionError(f"{source}: {e}") from None


def _electra_config(hf: dict) -> ElectraConfig:
    if hf.get("model_type", "electra") != "electra":
        raise ConversionError(
            f"This is an HF {hf['model_type']!r} model, not ELECTRA "
            "(config.json model_type); only ELECTRA weights convert"
        )
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConversionError(f"hidden_act {act!r} is not supported (only exact 'gelu')")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError("Only position_embedding_type 'absolute' is supported")
    emb = hf.get("embedding_size", hf["hidden_size"])
    return ElectraConfig(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_hidden_layers=hf["num_hidden_layers"],
        num_attention_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        embedding_size=None if emb == hf["hidden_size"] else emb,
        hidden_dropout_prob=hf.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=hf.get("attention_probs_dropout_prob", 0.1),
        max_position_embeddings=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2),
        initializer_range=hf.get("initializer_range", 0.02),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
    )


def hf_config(config: ElectraConfig, architecture: str, **extra) -> dict:
    return {
        "architectures": [architecture],
        "model_type": "electra",
        "vocab_size": config.vocab_size,
        "embedding_size": config.embedding_dim,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": config.hidden_act,
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_eps,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
        **extra,
    }


def detect_kind(state: dict) -> str:
    if any(k.startswith("generator_predictions.") for k in state):
        return "generator"
    if any(k.startswith("discriminator_predictions.") for k in state):
        return "discriminator"
    if any(k.startswith("classifier.") for k in state) and any(
        k.startswith("electra.") for k in state
    ):
        return "token_classification"
    return "model"


def read(directory: str, role: str | None = None) -> layout.Bundle:
    """A Bundle from one HF directory. A generator alone gets its own embeddings
    (`generator/embeddings/...`); `combine` ties them to a discriminator's.

    `role="encoder"` reads only the ELECTRA encoder of any HF ELECTRA model (as
    `ElectraModel.from_pretrained` does) and leaves its heads in the file.
    """
    hf = read_config(directory)
    config = electra_config(hf, os.path.join(directory, CONFIG_FILE))
    state = load_state_dict(directory)
    kind = role or detect_kind(state)
    prefix = "electra." if any(k.startswith("electra.") for k in state) else ""
    if kind == "encoder":
        state = {k: v for k, v in state.items() if k.startswith(prefix)}
    if kind == "generator":
        pairs = encoder_pairs(config, "generator", "generator", prefix) + generator_head_pairs()
    else:
        pairs = encoder_pairs(config, "electra", "electra", prefix)
        if kind == "discriminator":
            pairs += discriminator_head_pairs()
        elif kind == "token_classification":
            pairs += token_head_pairs()
    report = MismatchReport(directory, f"an HF Electra {kind} with its config.json")
    weights = _mapped_weights(state, pairs, report)
    if kind == "generator":
        _check_tied_lm_head(state, prefix, report)
    report.raise_if_any()
    num_labels = None
    id2label = None
    if kind == "token_classification":
        num_labels = int(np.shape(state["classifier.weight"])[0])
        id2label = {int(k): v for k, v in hf.get("id2label", {}).items()} or None
    if kind == "generator":
        return _generator_bundle(directory, weights, config)
    bundle = layout.Bundle(
        weights=weights,
        discriminator=config,
        num_labels=num_labels,
        id2label=id2label,
        has_discriminator_head=kind == "discriminator",
    )
    layout.validate(bundle, directory, f"the model its {CONFIG_FILE} describes")
    return bundle


def _mapped_weights(state, pairs, report):
    """Our weights from an HF state dict by (ours, theirs, transpose) pairs; missing and
    unexpected tensors go to `report`."""
    weights = {}
    for ours, theirs, transpose in pairs:
        if theirs not in state:
            report.missing(theirs, None)
            continue
        value = np.asarray(state[theirs], np.float32)
        weights[ours] = value.T if transpose else value
    used = {theirs for _, theirs, _ in pairs}
    ignorable = ("position_ids", "generator_lm_head.weight")
    for key in sorted(set(state) - used):
        if not key.endswith(ignorable):
            report.unexpected(key, np.shape(state[key]))
    return weights


def _check_tied_lm_head(state, prefix, report):
    """Our generator ties its output layer to its word embeddings; HF's may hold a copy."""
    lm_head = state.get("generator_lm_head.weight")
    word_embeddings = f"{prefix}embeddings.word_embeddings.weight"
    if lm_head is not None and word_embeddings in state:
        if not np.array_equal(lm_head, state[word_embeddings]):
            report.value(
                "generator_lm_head.weight",
                "tied to word_embeddings",
                "untied values",
                "untied output layers are not supported",
            )


def _generator_bundle(directory, weights, config):
    """A generator alone, with its own embeddings, checked against its config."""
    bundle = layout.Bundle(
        weights=weights,
        discriminator=config,
        generator=config,
        untied_generator_embeddings=True,
    )
    # Check shapes against the config (no discriminator: compare the generator part only).
    expected = {
        k: v for k, v in layout.expected_shapes(bundle, False).items() if k.startswith("generator")
    }
    r = MismatchReport(directory, f"the generator its {CONFIG_FILE} describes")
    r.compare(expected, {k: v.shape for k, v in weights.items()})
    r.raise_if_any()
    return bundle


def combine(discriminator: layout.Bundle, generator: layout.Bundle) -> layout.Bundle:
    """One pre-training Bundle from an HF discriminator and generator.

    Generators released next to a discriminator carry a copy of its embedding
    block; when identical it becomes the original's shared layout.
    """
    gen_config = generator.generator
    disc_config = discriminator.discriminator
    weights = dict(discriminator.weights)
    gen_weights = generator.weights
    names = (
        "word_embeddings",
        "token_type_embeddings",
        "position_embeddings",
        "LayerNorm/gamma",
        "LayerNorm/beta",
    )
    shared = all(
        np.array_equal(
            gen_weights.get(f"generator/embeddings/{n}"), weights.get(f"electra/embeddings/{n}")
        )
        for n in names
    )
    for name, value in gen_weights.items():
        if shared and name.startswith("generator/embeddings/"):
            continue
        weights[name] = value
    if shared:
        gen_config = gen_config.replace(embedding_size=disc_config.embedding_dim)
    bundle = layout.Bundle(
        weights=weights,
        discriminator=disc_config,
        generator=gen_config,
        untied_generator_embeddings=not shared,
        has_discriminator_head=True,
    )
    layout.validate(bundle, "the HF discriminator + generator", "a pre-training model")
    return bundle


# ---- writing ----


def _save(directory: str, state: dict, config: dict, vocab_file: str | None):
    from safetensors.numpy import save

    os.makedirs(directory, exist_ok=True)
    write_bytes(
        os.path.join(directory, HF_SAFETENSORS_FILE),
        save(
            {k: np.ascontiguousarray(v, np.float32) for k, v in state.items()},
            metadata={"format": "pt"},
        ),
    )
    write_json(os.path.join(directory, CONFIG_FILE), config, indent=2, sort_keys=True)
    if vocab_file:
        copy_file(vocab_file, os.path.join(directory, VOCAB_FILE))


def _state(weights, pairs):
    return {
        theirs: (np.asarray(weights[ours]).T if transpose else np.asarray(weights[ours]))
        for ours, theirs, transpose in pairs
    }


def write(bundle: layout.Bundle, directory: str, kind: str, vocab_file: str | None = None):
    """Writes one HF directory: kind in model, discriminator, generator, token_classification."""
    w = bundle.weights
    d = bundle.discriminator
    if kind == "generator":
        g = bundle.generator
        if g is None:
            raise ConversionError("The source holds no generator")
        emb_scope = "generator" if bundle.untied_generator_embeddings else "electra"
        pairs = encoder_pairs(g, "generator", emb_scope, "electra.") + generator_head_pairs()
        state = _state(w, pairs)
        _save(directory, state, hf_config(g, "ElectraForMaskedLM"), vocab_file)
        return
    if kind == "model":
        pairs, arch, extra = encoder_pairs(d, "electra", "electra", ""), "ElectraModel", {}
    elif kind == "discriminator":
        pairs = encoder_pairs(d, "electra", "electra", "electra.") + discriminator_head_pairs()
        arch, extra = "ElectraForPreTraining", {}
    elif kind == "token_classification":
        if bundle.num_labels is None:
            raise ConversionError("The source holds no token-classification head")
        pairs = encoder_pairs(d, "electra", "electra", "electra.") + token_head_pairs()
        labels = bundle.id2label or {i: f"LABEL_{i}" for i in range(bundle.num_labels)}
        arch = "ElectraForTokenClassification"
        extra = {
            "id2label": {str(k): v for k, v in labels.items()},
            "label2id": {v: int(k) for k, v in labels.items()},
        }
    else:
        raise ConversionError(f"Unknown HF kind {kind!r}")
    missing = [ours for ours, _, _ in pairs if ours not in w]
    if missing:
        raise ConversionError(f"The source lacks what an HF {arch} needs: {missing}")
    _save(directory, _state(w, pairs), hf_config(d, arch, **extra), vocab_file)
