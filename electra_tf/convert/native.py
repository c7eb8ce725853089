"""Our models (ElectraEncoder, ElectraPretrainer, ElectraForTokenClassification) <-> Bundle.

Variables are mapped by object (layer attributes), not by Keras path strings,
so the mapping does not depend on how Keras names scopes.
"""

import json
import os

import numpy as np
import tensorflow as tf

from electra_tf.convert import layout
from electra_tf.convert.report import ConversionError, MismatchReport
from electra_tf.data import tokenization
from electra_tf.filenames import (
    CONFIG_FILE,
    CONVERTED_FLAGS_FILE,
    DISCRIMINATOR_DIR,
    PRETRAINING_SETTINGS_FILE,
    TOKEN_CLASSIFIER_FILE,
    TOKEN_CLASSIFIER_PREFIX,
    VOCAB_FILE,
)
from electra_tf.files import copy_file, write_json, write_text
from electra_tf.model.config import ElectraConfig
from electra_tf.model.encoder import ElectraEncoder
from electra_tf.pretraining.settings import PretrainingSettings

_DUMMY_SPECIAL = tokenization.SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)


def _dense(out, scope, layer):
    out[f"{scope}/kernel"] = layer.kernel
    out[f"{scope}/bias"] = layer.bias


def _norm(out, scope, layer):
    out[f"{scope}/gamma"] = layer.gamma
    out[f"{scope}/beta"] = layer.beta


def encoder_variables(encoder: ElectraEncoder, scope: str, embeddings_scope: str | None):
    """Original name -> our variable, for one encoder."""
    out = {}
    if embeddings_scope is not None:
        e, base = encoder.embeddings, f"{embeddings_scope}/embeddings"
        out[f"{base}/word_embeddings"] = e.word_embeddings
        out[f"{base}/token_type_embeddings"] = e.token_type_embeddings
        out[f"{base}/position_embeddings"] = e.position_embeddings
        _norm(out, f"{base}/LayerNorm", e.layer_norm)
    if encoder.embeddings_project is not None:
        _dense(out, f"{scope}/embeddings_project", encoder.embeddings_project)
    for i, layer in enumerate(encoder.transformer_layers):
        base = f"{scope}/encoder/layer_{i}"
        _dense(out, f"{base}/attention/self/query", layer.query)
        _dense(out, f"{base}/attention/self/key", layer.key)
        _dense(out, f"{base}/attention/self/value", layer.value)
        _dense(out, f"{base}/attention/output/dense", layer.attention_output)
        _norm(out, f"{base}/attention/output/LayerNorm", layer.attention_layer_norm)
        _dense(out, f"{base}/intermediate/dense", layer.intermediate)
        _dense(out, f"{base}/output/dense", layer.output_dense)
        _norm(out, f"{base}/output/LayerNorm", layer.output_layer_norm)
    return out


def pretrainer_variables(model) -> dict:
    out = encoder_variables(model.discriminator, "electra", "electra")
    untied = model.untied_generator_embeddings
    out.update(encoder_variables(model.generator, "generator", "generator" if untied else None))
    head = model.generator_predictions
    _dense(out, "generator_predictions/dense", head.dense)
    _norm(out, "generator_predictions/LayerNorm", head.layer_norm)
    out["generator_predictions/output_bias"] = head.output_bias
    _dense(out, "discriminator_predictions/dense", model.discriminator_predictions.dense)
    _dense(out, "discriminator_predictions/dense_1", model.discriminator_predictions.dense_1)
    return out


def token_classifier_variables(model) -> dict:
    out = encoder_variables(model.encoder, "electra", "electra")
    _dense(out, layout.TOKEN_HEAD, model.task_specific.dense)
    return out


def _check_complete(variables: dict, model) -> None:
    mapped = {id(v) for v in variables.values()}
    unmapped = [v.path for v in model.weights if id(v) not in mapped]
    if unmapped:
        raise ConversionError(f"Internal: variables with no original name: {unmapped}")


def assign(variables: dict, weights: dict, source: str) -> None:
    report = MismatchReport(source, "our model")
    report.compare(
        {k: tuple(v.shape) for k, v in variables.items()},
        {k: tuple(np.shape(weights[k])) for k in weights if k in variables},
        allow_unexpected=True,
    )
    report.raise_if_any()
    for name, variable in variables.items():
        variable.assign(np.asarray(weights[name], dtype=np.float32))


def read_values(variables: dict) -> dict:
    return {name: np.asarray(v.numpy()) for name, v in variables.items()}


# ---- encoder directories (ElectraEncoder.save_pretrained) ----


def build_encoder(config: ElectraConfig) -> ElectraEncoder:
    encoder = ElectraEncoder(config, name="electra")
    encoder(encoder.dummy_inputs())
    return encoder


def encoder_from_bundle(
    bundle: layout.Bundle,
    source: str = "the source",
    target: str = "an ElectraEncoder",
    vocab_size: int | None = None,
) -> ElectraEncoder:
    """The discriminator's encoder, built and loaded; other weights in the bundle are ignored."""
    layout.validate(
        bundle,
        source,
        target,
        vocab_size=vocab_size,
        discriminator_head=False,
        allow_unexpected=True,
    )
    encoder = build_encoder(bundle.discriminator)
    variables = encoder_variables(encoder, "electra", "electra")
    _check_complete(variables, encoder)
    assign(variables, bundle.weights, source)
    return encoder


def write_encoder_dir(bundle: layout.Bundle, directory: str, vocab_file: str | None = None):
    encoder = encoder_from_bundle(
        bundle, target=f"an encoder directory {directory}", vocab_size=_vocab_size(vocab_file)
    )
    encoder.save_pretrained(directory)
    if vocab_file:
        copy_file(vocab_file, f"{directory}/{VOCAB_FILE}")
    return encoder


def read_encoder_dir(directory: str) -> layout.Bundle:
    encoder = ElectraEncoder.from_pretrained(directory, name="electra")
    weights = read_values(encoder_variables(encoder, "electra", "electra"))
    return layout.Bundle(weights=weights, discriminator=encoder.config)


# ---- token classifier directories ----


def build_token_classifier(config: ElectraConfig, num_labels: int):
    try:
        from electra_tf.finetuning.models import ElectraForTokenClassification
    except ImportError as e:
        raise ConversionError(
            "Token classification needs electra_tf.finetuning.models."
            f"ElectraForTokenClassification, which cannot be imported: {e}"
        ) from e
    model = ElectraForTokenClassification(config, num_labels)
    model.build()
    return model


def write_token_classifier_dir(
    bundle: layout.Bundle, directory: str, vocab_file: str | None = None
):
    """The discriminator (encoder dir layout) plus `model.ckpt`: tf.train.Checkpoint(model=...)."""
    if bundle.num_labels is None:
        raise ConversionError("The source holds no token-classification head")
    layout.validate(
        bundle,
        "the source",
        f"a token classifier in {directory}",
        vocab_size=_vocab_size(vocab_file),
        discriminator_head=False,
    )
    model = build_token_classifier(bundle.discriminator, bundle.num_labels)
    variables = token_classifier_variables(model)
    _check_complete(variables, model)
    assign(variables, bundle.weights, "the source")
    model.encoder.save_pretrained(directory)
    tf.train.Checkpoint(model=model).write(f"{directory}/{TOKEN_CLASSIFIER_PREFIX}")
    write_json(
        f"{directory}/{TOKEN_CLASSIFIER_FILE}",
        {
            "num_labels": bundle.num_labels,
            "id2label": {str(k): v for k, v in (bundle.id2label or {}).items()},
        },
        indent=2,
        sort_keys=True,
    )
    if vocab_file:
        copy_file(vocab_file, f"{directory}/{VOCAB_FILE}")
    return model


def load_token_classifier(directory: str):
    meta = _read_token_classifier_meta(f"{directory}/{TOKEN_CLASSIFIER_FILE}")
    model = build_token_classifier(
        ElectraConfig.load(f"{directory}/{CONFIG_FILE}"), meta["num_labels"]
    )
    tf.train.Checkpoint(model=model).read(
        f"{directory}/{TOKEN_CLASSIFIER_PREFIX}"
    ).assert_consumed()
    return model, {int(k): v for k, v in meta.get("id2label", {}).items()}


def _read_token_classifier_meta(path: str) -> dict:
    fix = "write the directory again with convert from-hf"
    if not tf.io.gfile.exists(path):
        raise ConversionError(f"{path} is missing: a token classifier directory holds it; {fix}")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path} is not valid JSON ({e}); {fix}") from None
    labels = meta.get("num_labels") if isinstance(meta, dict) else None
    if not isinstance(labels, int) or isinstance(labels, bool) or labels < 1:
        raise ConversionError(f"{path} needs num_labels, a positive integer; {fix}")
    return meta


def read_token_classifier_dir(directory: str) -> layout.Bundle:
    model, id2label = load_token_classifier(directory)
    return layout.Bundle(
        weights=read_values(token_classifier_variables(model)),
        discriminator=model.config,
        num_labels=model.num_labels,
        id2label=id2label or None,
    )


# ---- pre-training model dirs (run_pretraining --model_dir) ----


def pretraining_settings(
    disc: ElectraConfig, gen: ElectraConfig, untied: bool, max_seq_length: int
) -> PretrainingSettings:
    """run_pretraining's architecture settings that rebuild exactly these configs.

    Raises ConversionError (listing what differs) when run_pretraining's
    generator rules (heads = hidden // 64, FFN = 4 x hidden, sizes as
    fractions of the discriminator) cannot produce `gen`.
    """
    model_size = {256: "small", 768: "base", 1024: "large"}.get(disc.hidden_size, "small")
    defaults = ElectraConfig()
    overrides = {}
    for field, value in disc.to_dict().items():
        if field == "vocab_size":
            continue
        if field in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "embedding_size",
        ) or value != getattr(defaults, field):
            overrides[field] = value
    settings = PretrainingSettings(
        model_size=model_size,
        model_hparam_overrides=json.dumps(overrides, sort_keys=True),
        max_seq_length=int(max_seq_length),
        generator_hidden_size=gen.hidden_size / disc.hidden_size,
        generator_layers=gen.num_hidden_layers / disc.num_hidden_layers,
        untied_generator_embeddings=bool(untied),
    )
    rebuilt_disc, rebuilt_gen = settings.model_configs(disc.vocab_size)
    report = MismatchReport("the source", "run_pretraining's generator/discriminator rules")
    layout.check_config_matches(disc, rebuilt_disc, "discriminator", report)
    layout.check_config_matches(gen, rebuilt_gen, "generator", report)
    if report:
        report.note(
            "run_pretraining derives the generator from the discriminator "
            "(heads = hidden // 64, intermediate = 4 x hidden); this generator does not "
            "follow those rules, so it cannot be resumed with run_pretraining."
        )
    report.raise_if_any()
    return settings


def build_pretrainer(disc, gen, untied, special=None, **kwargs):
    from electra_tf.pretraining.model import ElectraPretrainer

    model = ElectraPretrainer(
        disc, gen, special or _DUMMY_SPECIAL, untied_generator_embeddings=untied, **kwargs
    )
    model.build()
    return model


def _checkpoint_objects(model, seed):
    from electra_tf.training.optimization import AdamWeightDecay
    from electra_tf.training.trainer import Trainer

    optimizer = AdamWeightDecay(model.trainable_variables, lambda step: 0.0)
    trainer = Trainer(tf.distribute.get_strategy(), model, optimizer, jit_compile=False, seed=seed)
    return trainer.checkpoint_objects()


def write_pretraining_dir(
    bundle: layout.Bundle,
    model_dir: str,
    vocab_file: str,
    max_seq_length: int = 128,
    include_optimizer: bool = True,
    seed: int = 0,
) -> str:
    """A --model_dir that `python -m electra_tf.run_pretraining` resumes from.

    Writes the checkpoint (model, optimizer slots + step, RNG), the
    architecture in pretraining_settings.json and the matching flags in
    converted.flags (pass `--flagfile=<model_dir>/converted.flags`).
    """
    if bundle.generator is None:
        raise ConversionError(
            "A pre-training checkpoint (--model_dir) needs a generator; the source has none: "
            "for HF, pass the generator's folder with --generator_hf_dir, or write a "
            "discriminator folder with --output_dir instead"
        )
    vocab = tokenization.load_vocab(vocab_file)
    layout.validate(
        bundle,
        "the source",
        f"a pre-training model_dir {model_dir}",
        vocab_size=len(vocab),
        discriminator_head=True,
    )
    settings = pretraining_settings(
        bundle.discriminator, bundle.generator, bundle.untied_generator_embeddings, max_seq_length
    )
    if tf.io.gfile.exists(f"{model_dir}/checkpoint"):
        raise ConversionError(
            f"{model_dir} already holds a checkpoint; convert into a new directory"
        )
    model = build_pretrainer(
        bundle.discriminator,
        bundle.generator,
        bundle.untied_generator_embeddings,
        tokenization.special_token_ids(vocab),
    )
    variables = pretrainer_variables(model)
    _check_complete(variables, model)
    assign(variables, bundle.weights, "the source")
    objects = _checkpoint_objects(model, seed)
    optimizer = objects["optimizer"]
    if include_optimizer:
        _assign_optimizer_state(optimizer, variables, bundle)
    tf.io.gfile.makedirs(model_dir)
    checkpoint = tf.train.Checkpoint(**objects)
    manager = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=None)
    saved = manager.save(checkpoint_number=int(optimizer.iterations.numpy()))
    _write_settings_files(model_dir, settings, vocab_file, len(vocab), seed)
    copy_file(vocab_file, f"{model_dir}/{VOCAB_FILE}")
    return saved


def load_pretraining(model_dir: str, checkpoint: str | None = None, vocab_file: str | None = None):
    """(model, optimizer, PretrainingSettings) restored from a run_pretraining --model_dir."""
    settings = PretrainingSettings.read(model_dir)
    path = checkpoint or tf.train.latest_checkpoint(model_dir)
    if path is None:
        raise ConversionError(f"No checkpoint in {model_dir}")
    vocab_size = _settings_vocab_size(model_dir, settings, vocab_file)
    if vocab_size is None:
        reader = tf.train.load_checkpoint(path)
        bias = [
            s
            for k, s in reader.get_variable_to_shape_map().items()
            if k.endswith("generator_predictions/output_bias/.ATTRIBUTES/VARIABLE_VALUE")
        ]
        if not bias:
            raise ConversionError(f"Cannot tell the vocabulary size of {path}: pass --vocab_file")
        vocab_size = int(bias[0][0])
    disc, gen = settings.model_configs(vocab_size)
    model = build_pretrainer(disc, gen, settings.generator_embeddings_untied)
    objects = _checkpoint_objects(model, settings.seed)
    tf.train.Checkpoint(**objects).read(path).assert_existing_objects_matched()
    return model, objects["optimizer"], settings


def read_pretraining_dir(
    model_dir: str, checkpoint: str | None = None, include_optimizer: bool = True
) -> layout.Bundle:
    model, optimizer, _ = load_pretraining(model_dir, checkpoint)
    variables = pretrainer_variables(model)
    weights = read_values(variables)
    if include_optimizer:
        by_path = {v.path: name for name, v in variables.items()}
        for i, path in enumerate(optimizer.paths):
            weights[f"{by_path[path]}/adam_m"] = optimizer.m[i].numpy()
            weights[f"{by_path[path]}/adam_v"] = optimizer.v[i].numpy()
        weights[layout.GLOBAL_STEP] = np.asarray(optimizer.iterations.numpy(), np.int64)
    return layout.Bundle(
        weights=weights,
        discriminator=model.discriminator_config,
        generator=model.generator_config,
        untied_generator_embeddings=model.untied_generator_embeddings,
        has_discriminator_head=True,
    )


def _assign_optimizer_state(optimizer, variables: dict, bundle: layout.Bundle) -> None:
    """The bundle's Adam slots (where it has them) and global step into `optimizer`."""
    by_path = {v.path: name for name, v in variables.items()}
    for i, path in enumerate(optimizer.paths):
        name = by_path[path]
        for slot, store in (("adam_m", optimizer.m), ("adam_v", optimizer.v)):
            value = bundle.weights.get(f"{name}/{slot}")
            if value is not None:
                store[i].assign(np.asarray(value, np.float32))
    if bundle.global_step is not None:
        optimizer.iterations.assign(bundle.global_step)


def _write_settings_files(model_dir, settings, vocab_file, vocab_size, seed) -> None:
    """The architecture in run_pretraining's settings file, and as flags in converted.flags."""
    values = {
        **settings.architecture(),
        "vocab_file": os.path.abspath(vocab_file),
        "vocab_size": vocab_size,
        "seed": seed,
    }
    write_json(f"{model_dir}/{PRETRAINING_SETTINGS_FILE}", values, indent=2, sort_keys=True)
    names = (
        "model_size",
        "model_hparam_overrides",
        "max_seq_length",
        "generator_hidden_size",
        "generator_layers",
    )
    lines = [f"--{name}={getattr(settings, name)}\n" for name in names]
    untied = settings.untied_generator_embeddings
    lines.append(f"--{'' if untied else 'no'}untied_generator_embeddings\n")
    write_text(f"{model_dir}/{CONVERTED_FLAGS_FILE}", "".join(lines))


def _vocab_size(vocab_file: str | None) -> int | None:
    return None if not vocab_file else len(tokenization.load_vocab(vocab_file))


def _settings_vocab_size(model_dir, settings, vocab_file):
    if vocab_file:
        return len(tokenization.load_vocab(vocab_file))
    if settings.vocab_size:
        return int(settings.vocab_size)
    for candidate in (
        settings.vocab_file,
        f"{model_dir}/{VOCAB_FILE}",
        f"{model_dir}/{DISCRIMINATOR_DIR}/{VOCAB_FILE}",
    ):
        if candidate and tf.io.gfile.exists(candidate):
            return len(tokenization.load_vocab(candidate))
    return None
