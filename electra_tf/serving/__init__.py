"""Export helpers whose graphs run on a stock TensorFlow Serving binary (core TF ops only)."""
