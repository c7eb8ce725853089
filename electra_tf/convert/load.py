"""One loader for every ELECTRA checkpoint format: `load_encoder(path)`.

The format is told from the files present:

* electra-tf discriminator directory: `config.json` + `encoder.ckpt.*`
  (`ElectraEncoder.save_pretrained`, `<run_pretraining model_dir>/discriminator`);
* Hugging Face ELECTRA directory: `config.json` + `model.safetensors` (or a
  sharded `model.safetensors.index.json`, or `pytorch_model.bin`);
* google-research/electra (TF1) checkpoint: a directory holding a `checkpoint`
  state file or a single `<name>.index`, or a checkpoint prefix, whose
  variables are named `electra/encoder/layer_0/...`;
* tf-models-official / TF Hub BertEncoder: an object-based checkpoint (or a
  SavedModel directory) whose object graph holds `_transformer_layers/0/...`;
* keras-hub ElectraBackbone preset: `config.json` + `model.weights.h5`
  (`save_to_preset`, `python -m electra_tf.convert to-keras-hub`).

Everything else raises `UnknownCheckpointFormat` listing what was looked for.
The weights are read by the converters in this package (`hf`, `original`,
`tf_models`, `native`), so `load_encoder` and `python -m electra_tf.convert`
agree name for name.
"""

import dataclasses
import json
import os

import tensorflow as tf

from electra_tf.convert import hf, keras_hub, layout, native, original, tf_models
from electra_tf.convert.report import (
    UNREADABLE_CHECKPOINT,
    ConversionError,
    first_line,
    read_checkpoint,
)
from electra_tf.data import tokenization
from electra_tf.filenames import (
    CONFIG_FILE,
    HF_OTHER_WEIGHT_FILES,
    HF_PYTORCH_FILE,
    HF_SAFETENSORS_FILE,
    HF_SAFETENSORS_INDEX_FILE,
    HF_TOKENIZER_CONFIG_FILE,
    KERAS_HUB_WEIGHTS_FILE,
    PRETRAINING_SETTINGS_FILE,
    VOCAB_FILE,
    WEIGHTS_PREFIX,
)
from electra_tf.model.config import ConfigError, ElectraConfig
from electra_tf.model.encoder import ElectraEncoder

ELECTRA_TF, HF, ORIGINAL, TF_MODELS = "electra_tf", "hf", "original", "tf_models"
KERAS_HUB = "keras_hub"
_HF_WEIGHTS = (HF_SAFETENSORS_FILE, HF_SAFETENSORS_INDEX_FILE, HF_PYTORCH_FILE)
_ORIGINAL_QUERY = "electra/encoder/layer_0/attention/self/query/kernel"
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_TF_MODELS_QUERY = "_transformer_layers/0/_attention_layer/_query_dense/kernel"

_LOOKED_FOR = (
    "load_encoder reads:\n"
    f"  - an electra-tf discriminator directory: {CONFIG_FILE} + {WEIGHTS_PREFIX}.index/.data-* "
    "(ElectraEncoder.save_pretrained; run_pretraining writes <model_dir>/discriminator)\n"
    f"  - a Hugging Face ELECTRA directory: {CONFIG_FILE} + {HF_SAFETENSORS_FILE} (or "
    f"{HF_SAFETENSORS_INDEX_FILE}, or {HF_PYTORCH_FILE}), as model.save_pretrained(dir) writes\n"
    "  - a google-research/electra (TF1) checkpoint: a directory with a `checkpoint` file or one "
    f"<name>.index + <name>.data-*, or that prefix, holding {_ORIGINAL_QUERY}\n"
    "  - a tf-models-official / TF Hub BertEncoder checkpoint (object-based, "
    "_transformer_layers/0/...) or SavedModel directory (variables/variables.index)\n"
    f"  - a keras-hub ElectraBackbone preset: {CONFIG_FILE} + {KERAS_HUB_WEIGHTS_FILE}"
)


class UnknownCheckpointFormat(ConversionError):
    """`path` is none of the formats `load_encoder` reads; the message lists them."""


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """Where an encoder's weights are and what came with them.

    `format` is one of "electra_tf", "hf", "original", "tf_models", "keras_hub";
    `checkpoint` is the directory (electra_tf, hf, keras_hub) or the TF checkpoint prefix
    (original, tf_models). `vocab_file` and `do_lower_case` are None where the
    checkpoint does not carry them.
    """

    format: str
    checkpoint: str
    vocab_file: str | None = None
    do_lower_case: bool | None = None


@dataclasses.dataclass(frozen=True)
class LoadedEncoder:
    """`load_encoder`'s result: our Keras encoder plus what its checkpoint said."""

    encoder: ElectraEncoder
    source: CheckpointSource

    @property
    def config(self) -> ElectraConfig:
        return self.encoder.config

    @property
    def vocab_file(self) -> str | None:
        return self.source.vocab_file

    @property
    def do_lower_case(self) -> bool | None:
        return self.source.do_lower_case

    @property
    def format(self) -> str:
        return self.source.format


def read_config_file(path: str) -> ElectraConfig:
    """An ElectraConfig from our `config.json` or an HF ELECTRA `config.json`.

    Example:

    ```python
    from electra_tf.convert.load import read_config_file

    read_config_file("electra-small-discriminator/config.json").hidden_size  # 256
    ```
    """
    if not tf.io.gfile.exists(path):
        raise ConversionError(f"{path} does not exist; pass the config.json of the model")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        values = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(
            f"{path} is not valid JSON ({e}); restore the file (re-download it "
            "or write it again with save_pretrained)"
        ) from None
    if not isinstance(values, dict):
        raise ConversionError(f"{path} holds a JSON {type(values).__name__}, not a config object")
    if set(values) <= {field.name for field in dataclasses.fields(ElectraConfig)}:
        try:
            return ElectraConfig.from_dict(values)
        except ConfigError as e:
            raise ConversionError(f"{path}: {e}") from None
    return hf.electra_config(values, path)


def find_checkpoint(path: str) -> CheckpointSource:
    """Tells the format of `path` from its files (and TF variable names), reading no weights.

    Raises UnknownCheckpointFormat (listing the formats) or ConversionError (a
    file missing beside another, naming both).

    Example:

    ```python
    from electra_tf.convert.load import find_checkpoint

    source = find_checkpoint("electra_small")  # google-research/electra release
    print(source.format, source.checkpoint, source.vocab_file)
    # original electra_small/electra_small electra_small/vocab.txt
    ```
    """
    path = str(path).rstrip("/")
    if tf.io.gfile.isdir(path):
        return _find_in_directory(path)
    if tf.io.gfile.exists(path + ".index"):
        return _tf_checkpoint_source(path, os.path.dirname(path))
    if tf.io.gfile.exists(path):
        raise UnknownCheckpointFormat(
            f"{path} is a file, not a checkpoint: pass its directory or a TF checkpoint prefix "
            f"(the path without .index / .data-*).\n{_LOOKED_FOR}"
        )
    raise UnknownCheckpointFormat(f"{path} does not exist.\n{_LOOKED_FOR}")


def _find_in_directory(directory: str) -> CheckpointSource:
    files = {f.rstrip("/") for f in tf.io.gfile.listdir(directory)}
    vocab = _beside(directory, VOCAB_FILE)
    has_config = CONFIG_FILE in files
    if f"{WEIGHTS_PREFIX}.index" in files:
        if not has_config:
            raise ConversionError(
                f"{directory}/{CONFIG_FILE} is missing: an electra-tf discriminator directory "
                f"holds {CONFIG_FILE} beside {WEIGHTS_PREFIX}.*; copy it from the run that wrote "
                "the weights (ElectraEncoder.save_pretrained writes both)"
            )
        return CheckpointSource(ELECTRA_TF, directory, vocab)
    if KERAS_HUB_WEIGHTS_FILE in files:
        return CheckpointSource(
            KERAS_HUB,
            directory,
            keras_hub.vocabulary_file(directory),
            keras_hub.do_lower_case(directory),
        )
    hf_weights = [f for f in _HF_WEIGHTS if f in files]
    if hf_weights:
        if not has_config:
            raise ConversionError(
                f"{directory}/{CONFIG_FILE} is missing: {hf_weights[0]} needs the model's "
                f"{CONFIG_FILE} beside it (download it from the same model repository, or save "
                "the model with model.save_pretrained(dir), which writes both)"
            )
        return CheckpointSource(HF, directory, vocab, _hf_do_lower_case(directory))
    other = [f for f in HF_OTHER_WEIGHT_FILES if f in files]
    if other:
        raise UnknownCheckpointFormat(
            f"{directory} holds HF weights only as {other[0]}, which load_encoder does not read: "
            "write safetensors with transformers, e.g. ElectraModel.from_pretrained(dir, "
            f"from_tf=True).save_pretrained(dir).\n{_LOOKED_FOR}"
        )
    if PRETRAINING_SETTINGS_FILE in files:
        raise UnknownCheckpointFormat(
            f"{directory} is a run_pretraining --model_dir (generator + discriminator): pass "
            f"{directory}/discriminator, which run_pretraining writes at the end, or write one "
            "from any checkpoint with python -m electra_tf.convert to-original / to-hf "
            f"--model_dir={directory}.\n{_LOOKED_FOR}"
        )
    if "saved_model.pb" in files:
        return _tf_checkpoint_source(f"{directory}/variables/variables", directory)
    return _tf_checkpoint_source(_checkpoint_prefix(directory, files), directory)


def _checkpoint_prefix(directory: str, files: set) -> str:
    """The TF checkpoint in a directory: the `checkpoint` state file's, else the only .index."""
    if "checkpoint" in files:
        latest = tf.train.latest_checkpoint(directory)
        if latest and tf.io.gfile.exists(latest + ".index"):
            return latest
    indexes = sorted(f[: -len(".index")] for f in files if f.endswith(".index"))
    if len(indexes) == 1:
        return f"{directory}/{indexes[0]}"
    if indexes:
        raise ConversionError(
            f"{directory} holds {len(indexes)} TF checkpoints ({', '.join(indexes)}) and no "
            "`checkpoint` file naming the current one: pass the prefix of the one to load, e.g. "
            f"{directory}/{indexes[-1]}"
        )
    listing = ", ".join(sorted(files)[:12]) + (", ..." if len(files) > 12 else "")
    raise UnknownCheckpointFormat(
        f"{directory} holds no checkpoint load_encoder recognizes (it holds: "
        f"{listing or 'nothing'}).\n{_LOOKED_FOR}"
    )


def _tf_checkpoint_source(prefix: str, directory: str) -> CheckpointSource:
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (*UNREADABLE_CHECKPOINT, ValueError) as e:
        raise ConversionError(
            f"Cannot read the TF checkpoint {prefix} ({first_line(e)}): its .index or .data-* "
            "file is damaged or incomplete; download or copy it again"
        ) from None
    names = reader.get_variable_to_shape_map()
    vocab = _beside(directory, VOCAB_FILE)
    if _ORIGINAL_QUERY in names:
        return CheckpointSource(ORIGINAL, prefix, vocab)
    if _OBJECT_GRAPH in names and any(
        p.endswith(_TF_MODELS_QUERY)
        for paths in tf_models._object_paths(reader).values()
        for p in paths
    ):
        return CheckpointSource(
            TF_MODELS, prefix, vocab or _beside(f"{directory}/assets", VOCAB_FILE)
        )
    sample = ", ".join(sorted(n for n in names if n != _OBJECT_GRAPH)[:6])
    raise UnknownCheckpointFormat(
        f"{prefix} is a TF checkpoint but not an ELECTRA encoder load_encoder knows (its first "
        f"variables: {sample or 'none'}).\n{_LOOKED_FOR}"
    )


def _beside(directory: str, name: str) -> str | None:
    path = f"{directory}/{name}" if directory else name
    return path if tf.io.gfile.exists(path) else None


def _hf_do_lower_case(directory: str) -> bool | None:
    path = _beside(directory, HF_TOKENIZER_CONFIG_FILE)
    if path is None:
        return None
    with tf.io.gfile.GFile(path) as f:
        try:
            value = json.load(f).get("do_lower_case")
        except json.JSONDecodeError as e:
            raise ConversionError(
                f"{path} is not valid JSON ({e}); download it again, or "
                "delete it and pass --do_lower_case yourself"
            ) from None
    return None if value is None else bool(value)


def load_encoder(path: str, num_attention_heads: int | None = None) -> LoadedEncoder:
    """Our Keras `ElectraEncoder` from an electra-tf, HF, original TF1, tf-models or keras-hub
    checkpoint.

    Args:
      path: a directory or TF checkpoint prefix in any format listed in this
        module's docstring; the format is detected from the files.
      num_attention_heads: for original (TF1) checkpoints, whose shapes do
        not show the head count. Default: `config.json` beside the checkpoint
        when there is one (ours or HF's), else hidden_size // 64 (the
        original's rule, right for the released small/base/large models).
        For the other formats it is checked against the checkpoint.

    Returns:
      A `LoadedEncoder`: `.encoder` (built, weights loaded, dropout off unless
      a `dropout_key` is passed), `.vocab_file` (vocab.txt beside the
      checkpoint or a keras-hub preset's vocabulary, or None), `.do_lower_case`
      (from an HF tokenizer_config.json or a keras-hub tokenizer.json, or None)
      and `.format`.

    Raises:
      UnknownCheckpointFormat: `path` is none of the formats (the message
        lists what was looked for); ConversionError: a file is missing or
        damaged, or the weights do not fit their config (the message names
        the file and the fix).

    Example:

    ```python
    import numpy as np
    import electra_tf

    loaded = electra_tf.load_encoder("electra-small-discriminator")  # an HF download
    ids = np.array([[101, 7592, 2088, 102]])  # [CLS] hello world [SEP]
    hidden = loaded.encoder({"input_ids": ids, "input_mask": np.ones_like(ids),
                             "segment_ids": np.zeros_like(ids)})  # [1, 4, 256]
    print(loaded.format, loaded.vocab_file, loaded.do_lower_case)  # hf .../vocab.txt True
    ```
    """
    source = find_checkpoint(path)
    if source.format == ELECTRA_TF:
        encoder = _read_electra_tf(source.checkpoint)
    else:
        if source.format == HF:
            bundle = read_checkpoint(hf.read, source.checkpoint, role="encoder")
        elif source.format == ORIGINAL:
            bundle = _original_encoder_bundle(source.checkpoint, num_attention_heads)
        elif source.format == KERAS_HUB:
            bundle = keras_hub.read(source.checkpoint)
        else:
            bundle = read_checkpoint(tf_models.read, source.checkpoint, num_attention_heads)
        encoder = native.encoder_from_bundle(bundle, source.checkpoint)
    heads = encoder.config.num_attention_heads
    if num_attention_heads is not None and num_attention_heads != heads:
        raise ConversionError(
            f"num_attention_heads={num_attention_heads} but {source.checkpoint} "
            f"has {heads} heads; leave num_attention_heads out"
        )
    if source.vocab_file is not None:
        vocab_size = len(tokenization.load_vocab(source.vocab_file))
        if vocab_size != encoder.config.vocab_size:
            raise ConversionError(
                f"{source.vocab_file} has {vocab_size} tokens but the model in "
                f"{source.checkpoint} has a vocabulary of {encoder.config.vocab_size}: put the "
                "model's own vocab.txt beside it"
            )
    return LoadedEncoder(encoder, source)


def _read_electra_tf(directory: str) -> ElectraEncoder:
    try:
        return ElectraEncoder.from_pretrained(directory, name="electra")
    except ConfigError as e:  # the message names config.json and the fix
        raise ConversionError(str(e)) from None
    # Keras raises ValueError for a weight whose shape is not the config's.
    except (*UNREADABLE_CHECKPOINT, AssertionError, ValueError) as e:
        raise ConversionError(
            f"Cannot restore {directory}/{WEIGHTS_PREFIX} ({first_line(e)}): the weights are "
            f"damaged or do not match {directory}/{CONFIG_FILE}; write the directory again with "
            "ElectraEncoder.save_pretrained"
        ) from None


def _original_encoder_bundle(prefix: str, num_attention_heads: int | None) -> layout.Bundle:
    """The discriminator's encoder from an original checkpoint; heads, optimizer slots,
    the generator and task heads are left in the file."""
    weights = read_checkpoint(original.read_variables, prefix, keep=_is_encoder_weight)
    shapes = {name: tuple(value.shape) for name, value in weights.items()}
    beside = _beside(os.path.dirname(prefix), CONFIG_FILE)
    if num_attention_heads is None and beside is not None:
        config = read_config_file(beside)
        report_source = f"{prefix} (with {beside})"
    else:
        config = layout.infer_encoder_config(shapes, "electra", "electra", num_attention_heads)
        report_source = prefix
    bundle = layout.Bundle(weights=weights, discriminator=config)
    layout.validate(
        bundle, report_source, "an ELECTRA encoder", discriminator_head=False, allow_unexpected=True
    )
    return bundle


def _is_encoder_weight(name: str) -> bool:
    return name.startswith("electra/") and name.rsplit("/", 1)[-1] not in layout.SLOT_SUFFIXES


def copy_encoder_weights(source: ElectraEncoder, target: ElectraEncoder) -> None:
    """Assigns `source`'s weights to `target` (an encoder of the same config), by original name.

    Example (start a fine-tuning model from any checkpoint):

    ```python
    from electra_tf.convert.load import copy_encoder_weights, load_encoder
    from electra_tf.finetuning.models import ElectraForTokenClassification

    loaded = load_encoder("electra_small")  # google-research/electra release
    model = ElectraForTokenClassification(loaded.config, num_labels=9)
    model.build()
    copy_encoder_weights(loaded.encoder, model.encoder)
    ```
    """
    native.assign(
        native.encoder_variables(target, "electra", "electra"),
        native.read_values(native.encoder_variables(source, "electra", "electra")),
        "the loaded encoder",
    )
