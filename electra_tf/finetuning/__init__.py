"""Fine-tuning: task data, heads, metrics, settings and the runner.

Modules:
  conll    -- CoNLL / CoNLL-U token classification data, label maps,
              word-to-wordpiece alignment, windowing and stitching.
  glue     -- GLUE-style sentence(-pair) classification / regression data.
  squad    -- SQuAD 1.1 / 2.0 reading, features and answer postprocessing.
  metrics  -- entity-level F1 (conlleval semantics), token accuracy, MCC,
              F1, accuracy, Pearson / Spearman and SQuAD EM / F1.
  models   -- the task heads on the discriminator.
  tasks    -- loads a task's train/dev data for the settings.
  settings -- FinetuningSettings, run_finetuning's flags as a validated dataclass.
  runner   -- finetune(settings): one model per seed, scored on dev.
"""
