"""Probe: HF-PyTorch discriminator alone on unigram replacements (same data/config as unigram_probe)."""

import sys

import numpy as np
import tensorflow as tf
import torch
import transformers

sys.path.insert(0, "/work/main")
from electra_tf.data import pretraining_input, tokenization
from electra_tf.experiments import reference_curve as rc
from electra_tf.pretraining.metrics import AUC_BINS, histogram_auc

torch.set_num_threads(1)
torch.manual_seed(0)
vocab = tokenization.load_vocab("/work/runs/kjv/vocab.txt")
V = len(vocab)
special = tokenization.special_token_ids(vocab)
counts = np.ones(V)
for r in tf.data.TFRecordDataset(tf.io.gfile.glob("/work/runs/kjv/tfr64/*.tfrecord*")).take(3000):
    ids = np.array(
        tf.train.Example.FromString(r.numpy()).features.feature["input_ids"].int64_list.value
    )
    np.add.at(counts, ids[ids > 4], 1)
unigram = torch.tensor(counts / counts.sum(), dtype=torch.float32)
s = rc.reference_settings(
    "/work/main/configs/demo.flags", ["--max_seq_length=64", "--learning_rate=1e-3"]
)
discriminator_config, _ = s.model_configs(V)
dropout = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
cfg = rc._hf_config(
    discriminator_config.replace(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout),
    "ElectraForPreTraining",
)
disc = transformers.ElectraForPreTraining(cfg)
disc.train()
mode = sys.argv[2] if len(sys.argv) > 2 else "original"
lr_scale = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
if mode == "torch":
    topt = torch.optim.AdamW(disc.parameters(), lr=1e-3, weight_decay=0.01, eps=1e-6)

    class ClippedStep:
        def step(self, lr):
            torch.nn.utils.clip_grad_norm_(disc.parameters(), 1.0)
            for g in topt.param_groups:
                g["lr"] = lr
            topt.step()
            topt.zero_grad()

    opt = ClippedStep()
else:
    opt = rc.OriginalAdamW(disc.named_parameters(), 0.01)
ds = pretraining_input.pretraining_dataset(
    "/work/runs/kjv/tfr64/pretrain_data.tfrecord*", 64, 32, is_training=True, seed=0
)
rng = torch.Generator().manual_seed(0)
pos_h, neg_h = np.zeros(AUC_BINS), np.zeros(AUC_BINS)
for step, b in enumerate(ds.take(600).as_numpy_iterator(), start=1):
    ids = torch.from_numpy(b["input_ids"]).long()
    m = torch.from_numpy(b["input_mask"]).long()
    positions, original, weights, _ = rc._mask(ids, m, special, s, rng)
    sampled = torch.multinomial(
        unigram, positions.numel(), replacement=True, generator=rng
    ).reshape(positions.shape)
    fake = ids.clone()
    rows = torch.arange(ids.shape[0])[:, None].expand_as(positions)
    keep = weights.bool()
    fake[rows[keep], positions[keep]] = sampled[keep]
    labels = (fake != ids).float() * m.float()
    logits = disc(
        input_ids=fake, attention_mask=m, token_type_ids=torch.from_numpy(b["segment_ids"]).long()
    ).logits
    real = m.float()
    loss = (
        50
        * (
            torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            * real
        ).sum()
        / real.sum()
    )
    loss.backward()
    opt.step(lr_scale * rc._learning_rate(step - 1, s, 600))
    with torch.no_grad():
        bins = (
            torch.clamp((torch.sigmoid(logits) * AUC_BINS).long(), max=AUC_BINS - 1)
            .flatten()
            .numpy()
        )
        pos_h += np.bincount(bins, (labels * real).flatten().numpy(), minlength=AUC_BINS)
        neg_h += np.bincount(bins, ((1 - labels) * real).flatten().numpy(), minlength=AUC_BINS)
    if step % 50 == 0:
        print(step, round(histogram_auc(pos_h, neg_h), 3), flush=True)
        pos_h[:] = 0
        neg_h[:] = 0
