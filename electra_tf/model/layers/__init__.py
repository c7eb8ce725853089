"""Keras layers that make up ELECTRA encoders and their pre-training heads."""
