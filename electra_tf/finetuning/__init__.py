"""Fine-tuning data and evaluation helpers.

Modules:
  conll   -- CoNLL / CoNLL-U token classification data, label maps,
             word-to-wordpiece alignment, windowing and stitching.
  glue    -- GLUE-style sentence(-pair) classification / regression data.
  squad   -- SQuAD 1.1 / 2.0 reading, features and answer postprocessing.
  metrics -- entity-level F1 (conlleval semantics), token accuracy, MCC,
             F1, accuracy, Pearson / Spearman and SQuAD EM / F1.
"""
