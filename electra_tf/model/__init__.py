"""The encoder: its configuration and presets, the Keras 3 model, and its layers."""
