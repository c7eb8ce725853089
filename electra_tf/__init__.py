"""ELECTRA pre-training and fine-tuning for TensorFlow 2 / Keras 3."""

import os

# Model code is Keras 3 on the TensorFlow backend; tf-models-official brings
# tf_keras beside it, which must never be picked up as `keras` here.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Public API name -> defining module. Imported on first use, so that
# `import electra_tf` (and light entry points such as serving.client) does
# not load TensorFlow and Keras.
_LAZY = {
    "load_encoder": "electra_tf.convert.load",
    "pretrain": "electra_tf.pretraining.runner",
    "PretrainingSettings": "electra_tf.pretraining.settings",
    "FinetuningSettings": "electra_tf.finetuning.settings",
    "finetune": "electra_tf.finetuning.runner",
    "export": "electra_tf.serving.export_finetuned",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
