"""Pre-training: generator + discriminator, masking and sampling, metrics, variants, settings, runner."""
