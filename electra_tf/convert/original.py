"""google-research/electra (TF1) checkpoints: read with tf.train.load_checkpoint, write as TF1 would.

Names follow model/modeling.py (`electra/embeddings/...`,
`electra/embeddings_project`, `electra/encoder/layer_i/attention/self/query`,
...), run_pretraining.py (`generator/...`, `generator_predictions/...`,
`discriminator_predictions/dense`, `dense_1`) and model/optimization.py
(`<variable>/adam_m`, `<variable>/adam_v`, `global_step`).
"""

import os
import uuid
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from electra_tf.convert import layout
from electra_tf.convert.report import ConversionError
from electra_tf.model.config import ElectraConfig

# Variables the original graph may hold that carry no model state.
_IGNORED = ("temperature",)


def checkpoint_path(path: str) -> str:
    """A checkpoint prefix from a prefix or a directory holding a `checkpoint` file."""
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise ConversionError(
                f"{path} is a directory without a `checkpoint` state file; "
                "pass the checkpoint prefix (e.g. .../model.ckpt-1000000)"
            )
        return latest
    if not tf.io.gfile.exists(path + ".index"):
        raise ConversionError(f"No TF checkpoint at {path} ({path}.index does not exist)")
    return path


def read_variables(path: str, keep: Callable[[str], bool] | None = None) -> dict:
    """Every variable by name, or those `keep(name)` accepts (the others are never read)."""
    reader = tf.train.load_checkpoint(checkpoint_path(path))
    names = reader.get_variable_to_shape_map()
    return {
        name: reader.get_tensor(name)
        for name in names
        if name not in _IGNORED
        and not name.startswith("_CHECKPOINTABLE")
        and (keep is None or keep(name))
    }


def read(
    path: str,
    num_attention_heads: int | None = None,
    generator_num_attention_heads: int | None = None,
    expected_discriminator: ElectraConfig | None = None,
    expected_generator: ElectraConfig | None = None,
    include_optimizer: bool = True,
    vocab_size: int | None = None,
) -> layout.Bundle:
    """A Bundle from an original checkpoint, its configs inferred from the shapes.

    Heads cannot be seen in the shapes: they default to hidden_size // 64 (the
    original's rule) unless given. With `expected_*` configs the checkpoint is
    checked against them instead, and every difference is reported at once.
    """
    weights = read_variables(path)
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    has_generator = any(k.startswith("generator/") for k in shapes)
    untied = "generator/embeddings/word_embeddings" in shapes
    if expected_discriminator is not None:
        disc = expected_discriminator
    else:
        disc = layout.infer_encoder_config(shapes, "electra", "electra", num_attention_heads)
    gen = None
    if expected_generator is not None:
        gen = expected_generator
    elif has_generator:
        gen = layout.infer_encoder_config(
            shapes, "generator", "generator" if untied else "electra", generator_num_attention_heads
        )
    if not include_optimizer:
        weights = {
            k: v
            for k, v in weights.items()
            if k != layout.GLOBAL_STEP and k.rsplit("/", 1)[-1] not in layout.SLOT_SUFFIXES
        }
    bundle = layout.Bundle(
        weights=weights,
        discriminator=disc,
        generator=gen,
        untied_generator_embeddings=untied,
        has_discriminator_head="discriminator_predictions/dense/kernel" in shapes,
    )
    layout.validate(bundle, path, "the expected model", vocab_size=vocab_size)
    return bundle


def write(bundle: layout.Bundle, path: str, include_optimizer: bool = True) -> str:
    """Writes a TF1-style (name-based) checkpoint at prefix `path`; returns the prefix.

    The names and shapes are exactly those the original code creates; only
    variables the bundle holds are written (a bundle without a generator gives
    a discriminator-only checkpoint).
    """
    layout.validate(bundle, "the model", f"an original checkpoint at {path}")
    weights = bundle.weights if include_optimizer else bundle.model_weights()
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0] if "/" in path else ".")
    names = sorted(weights)
    tensors = [
        tf.constant(
            np.asarray(weights[n]).astype(np.int64 if n == layout.GLOBAL_STEP else np.float32)
        )
        for n in names
    ]
    # Written under a temporary prefix and renamed, the data first and the index last (readers
    # look for the index), so a crash never leaves a half-written checkpoint at `path`.
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        # SaveV2 is what TF1's tf.train.Saver writes: a name-based checkpoint.
        tf.raw_ops.SaveV2(
            prefix=temporary,
            tensor_names=names,
            shape_and_slices=[""] * len(names),
            tensors=tensors,
        )
        for data in tf.io.gfile.glob(f"{temporary}.data-*"):
            tf.io.gfile.rename(data, path + data[len(temporary) :], overwrite=True)
        tf.io.gfile.rename(f"{temporary}.index", f"{path}.index", overwrite=True)
    finally:
        for leftover in tf.io.gfile.glob(f"{temporary}.*"):
            tf.io.gfile.remove(leftover)
    return path
