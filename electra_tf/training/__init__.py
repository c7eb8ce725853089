"""Training machinery both runners share: the train step, AdamW and schedules, strategies, randomness."""
