"""ELECTRA pre-training and fine-tuning for TensorFlow 2 / Keras 3."""

import os

# Model code is Keras 3 on the TensorFlow backend; tf-models-official brings
# tf_keras beside it, which must never be picked up as `keras` here.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
