"""Text in, model inputs out: corpora, tokenization, vocabulary learning, pre-training TFRecords."""
