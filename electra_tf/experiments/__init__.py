"""Experiments on the library: the RTD sweep, the HF reference curve, compute-matched comparisons."""
