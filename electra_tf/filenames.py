"""Every file and folder name electra-tf reads or writes on disk, in one place.

The values are fixed by what is already on disk: existing model directories, Hugging Face
directories and the original google-research/electra TFRecords must keep loading, so a name
here changes only together with a reader for the old one. This module imports nothing from
electra_tf, so any module may use it.
"""

# ElectraConfig as JSON, in an encoder directory and in a Hugging Face directory alike.
CONFIG_FILE = "config.json"
# tf.train.Checkpoint prefix of an ElectraEncoder (`encoder.ckpt.index`, `.data-*`).
WEIGHTS_PREFIX = "encoder.ckpt"
# WordPiece vocabulary, one token a line, copied beside every model it tokenizes for.
VOCAB_FILE = "vocab.txt"
# Hugging Face tokenizer settings (do_lower_case), read when converting an HF directory.
HF_TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# Hugging Face weights in safetensors form; a sharded model adds HF_SAFETENSORS_INDEX_FILE.
HF_SAFETENSORS_FILE = "model.safetensors"
# Hugging Face index of a sharded safetensors model: which shard holds which tensor.
HF_SAFETENSORS_INDEX_FILE = HF_SAFETENSORS_FILE + ".index.json"
# Hugging Face weights as a PyTorch pickle (older save_pretrained).
HF_PYTORCH_FILE = "pytorch_model.bin"
# Hugging Face weights for frameworks the converters do not read; named in the error.
HF_OTHER_WEIGHT_FILES = ("tf_model.h5", "flax_model.msgpack")
# A converted token classifier's head: number of labels and the label list.
TOKEN_CLASSIFIER_FILE = "token_classification.json"
# tf.train.Checkpoint prefix of a converted token classifier (encoder plus head).
TOKEN_CLASSIFIER_PREFIX = "model.ckpt"
# PretrainingSettings as JSON, written into the pre-training model_dir.
PRETRAINING_SETTINGS_FILE = "pretraining_settings.json"
# FinetuningSettings as JSON, written into the fine-tuning model_dir.
FINETUNING_SETTINGS_FILE = "finetuning_settings.json"
# Fine-tuning's folder for one seed, `<prefix><seed>` under model_dir.
SEED_DIR_PREFIX = "seed_"
# The folder in a seed's folder holding its best dev checkpoint.
BEST_CHECKPOINT_DIR = "best"
# tf.train.Checkpoint prefix of a fine-tuned model, in BEST_CHECKPOINT_DIR.
BEST_CHECKPOINT_PREFIX = "model"
# Fine-tuning dev scores per seed and their summary.
RESULTS_FILE = "results.json"
# Fine-tuning label list, index to label name; also the SavedModel asset of that name.
LABEL_MAP_FILE = "label_map.json"
# The discriminator that pre-training saves as an encoder directory under model_dir.
DISCRIMINATOR_DIR = "discriminator"
# The generator that `convert` writes as a Hugging Face directory beside DISCRIMINATOR_DIR.
GENERATOR_DIR = "generator"
# The architecture as run_pretraining flags, written by `convert` beside a pre-training checkpoint.
CONVERTED_FLAGS_FILE = "converted.flags"
# TensorBoard summaries of a training run, under model_dir.
TRAIN_SUMMARY_DIR = "train"
# The demo's plot of discriminator AUC and masked-LM accuracy against steps, in TRAIN_SUMMARY_DIR.
LEARNING_CURVE_FILE = "learning_curve.png"
# Pre-training TFRecord shards, `<prefix>-<index>-of-<count>`, as the original writes them.
SHARD_PREFIX = "pretrain_data.tfrecord"
# Sizes and tokenizer settings of a pre-training TFRecord set, beside its shards.
DATASET_INFO_FILE = "dataset_info.json"
# TF Serving warm-up requests, in a SavedModel's assets.extra.
WARMUP_FILE = "tf_serving_warmup_requests"
# What an export was built from and with, in a SavedModel's assets.extra.
EXPORT_INFO_FILE = "export_info.json"

# Label-map files an export accepts beside a checkpoint, in the order they are tried.
LABEL_MAP_FILES = (LABEL_MAP_FILE, "labels.json", TOKEN_CLASSIFIER_FILE)
# Settings files an export accepts beside a checkpoint, in the order they are tried.
SETTINGS_FILES = (FINETUNING_SETTINGS_FILE, "export_settings.json", "settings.json")

# keras-hub preset files (ElectraBackbone / ElectraTokenizer.save_to_preset); CONFIG_FILE holds
# the backbone there.
KERAS_HUB_WEIGHTS_FILE = "model.weights.h5"
KERAS_HUB_METADATA_FILE = "metadata.json"
KERAS_HUB_TOKENIZER_FILE = "tokenizer.json"
KERAS_HUB_VOCABULARY_FILE = "assets/tokenizer/vocabulary.txt"
