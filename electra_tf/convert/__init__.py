"""Checkpoint conversion between this project and other ELECTRA implementations.

    python -m electra_tf.convert from-original ...   # google-research/electra TF1
    python -m electra_tf.convert to-original ...
    python -m electra_tf.convert from-hf ...         # Hugging Face (safetensors)
    python -m electra_tf.convert to-hf ...
    python -m electra_tf.convert from-tf-models ...  # tf-models-official BertEncoder
    python -m electra_tf.convert to-keras-hub ...    # keras-hub ElectraBackbone preset
    python -m electra_tf.convert from-keras-hub ...

All conversions go through `layout.Bundle`: weights under the original TF1
variable names. Mismatches are raised as one `ConversionError` listing every
difference.
"""

from electra_tf.convert.layout import Bundle  # noqa: F401
from electra_tf.convert.report import ConversionError  # noqa: F401
