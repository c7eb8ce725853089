"""Learning curves of our ElectraPretrainer beside an independent HF-PyTorch ELECTRA.

    python -m electra_tf.experiments.reference_curve --data_root=runs/kjv --data=tfr128 \
        --output=docs/rtd_reference/curves.jsonl --num_train_steps=4000 \
        --flags=--learning_rate=1e-3

Both train on the same TFRecords, read in the same order (electra_tf.data.pretraining_input
with the same seed), from the same flagfile (--base_flagfile, default the
demo's) and flags:
  - "ours": `electra_tf.pretrain` (run_pretraining's engine) in this process,
    through rtd_sweep.run_one; its windows come from its TensorBoard logs.
  - "hf_torch": transformers' ElectraForMaskedLM (generator) and
    ElectraForPreTraining (discriminator) with the whole embedding block shared,
    written here from the paper and the original code, not from our model:
    the original's dynamic masking (mask_prob of the real tokens, at most
    max_predictions_per_seq, 85% [MASK] / 15% kept), samples from
    softmax(generator logits / temperature) with no gradient, labels "sample !=
    original", loss gen_weight * MLM + disc_weight * mean BCE over real tokens,
    and the original's AdamW (no bias correction, decoupled weight decay
    except LayerNorm/bias, global-norm clipping at 1, warmup multiplied into
    the linear decay).
Flags for what the reference does not implement (another --objective or
--generator_training, a uniform or untied generator, --disallow_correct, a
non-linear decay) are refused rather than ignored.
Every --log_every steps each side writes a JSONL row with its masked-LM and
discriminator accuracy and disc AUC over that window (the same histogram AUC).
"""

import json
import os
import re
import time

import numpy as np
from absl import app, flags, logging

from electra_tf.experiments import rtd_sweep
from electra_tf.filenames import SHARD_PREFIX, VOCAB_FILE
from electra_tf.pretraining.metrics import AUC_BINS, histogram_auc
from electra_tf.pretraining.settings import PretrainingSettings, SettingsError

FLAGS = flags.FLAGS


def define_flags():
    """rtd_sweep's flags (--data_root, --output, --base_flagfile, --threads_per_run...) and
    this command's, defined when it runs, not on import."""
    rtd_sweep.define_flags()
    flags.DEFINE_string("data", "tfr128", "TFRecord subfolder of --data_root.")
    flags.DEFINE_integer("num_train_steps", 4000, "Steps of both runs.")
    flags.DEFINE_integer("log_every", 100, "Steps per logged window.")
    flags.DEFINE_list("flags", [], "Extra run_pretraining flags for both sides.")
    flags.DEFINE_list("sides", ["ours", "hf_torch"], "Which implementations to train.")
    flags.DEFINE_integer("reference_seed", 0, "Seed of the PyTorch side (init, masking, sampling).")


# The settings the reference is written for, the paper's ELECTRA, and their values it implements.
_REFERENCE_IMPLEMENTS = {
    "objective": ("electra",),
    "generator_training": ("mle",),
    "uniform_generator": (False,),
    "untied_generator": (True,),
    "embedding_sharing": (None, "embeddings"),
    "untied_generator_embeddings": (False,),
    "disallow_correct": (False,),
    "lr_decay_power": (1.0,),
}


def reference_settings(flagfile, extra):
    """run_pretraining's settings from `flagfile` plus `extra` flags (later wins).

    Raises app.UsageError for flags that do not parse, and for settings the
    reference does not implement (it would train something else silently).
    """
    try:
        settings = PretrainingSettings.from_flags([f"--flagfile={flagfile}", *extra])
    except SettingsError as e:
        raise app.UsageError(str(e)) from e
    unsupported = [
        f"--{name}={getattr(settings, name)}"
        for name, implemented in _REFERENCE_IMPLEMENTS.items()
        if getattr(settings, name) not in implemented
    ]
    if unsupported:
        raise app.UsageError(
            "the HF-PyTorch reference implements the paper's ELECTRA only, not "
            + ", ".join(unsupported)
        )
    return settings


def _hf_config(config, architecture):
    import transformers

    return transformers.ElectraConfig(
        vocab_size=config.vocab_size,
        embedding_size=config.embedding_dim,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        initializer_range=config.initializer_range,
        layer_norm_eps=config.layer_norm_eps,
        architectures=[architecture],
    )


class OriginalAdamW:
    """google-research/electra's AdamWeightDecayOptimizer, for torch parameters."""

    def __init__(self, named_parameters, weight_decay_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-6):
        import torch

        self.params = [(name, p) for name, p in named_parameters if p.requires_grad]
        self.decay = {
            name: not re.search(r"LayerNorm|layer_norm|bias", name) for name, _ in self.params
        }
        self.m = {name: torch.zeros_like(p) for name, p in self.params}
        self.v = {name: torch.zeros_like(p) for name, p in self.params}
        self.weight_decay_rate, self.beta_1, self.beta_2, self.epsilon = (
            weight_decay_rate,
            beta_1,
            beta_2,
            epsilon,
        )

    def step(self, learning_rate):
        import torch

        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for _, p in self.params]
            norm = torch.sqrt(sum(torch.sum(g * g) for g in grads))
            scale = 1.0 / max(1.0, float(norm))
            for (name, p), g in zip(self.params, grads):
                g = g * scale
                self.m[name].mul_(self.beta_1).add_(g, alpha=1.0 - self.beta_1)
                self.v[name].mul_(self.beta_2).addcmul_(g, g, value=1.0 - self.beta_2)
                update = self.m[name] / (torch.sqrt(self.v[name]) + self.epsilon)
                if self.decay[name] and self.weight_decay_rate:
                    update += self.weight_decay_rate * p
                p.sub_(learning_rate * update)
                p.grad = None
        return float(norm)


def _learning_rate(step, s, num_train_steps):
    lr = s.learning_rate * (1.0 - min(step, num_train_steps) / num_train_steps)
    if s.num_warmup_steps > 0:
        lr *= min(1.0, step / s.num_warmup_steps)
    return lr


def _mask(input_ids, input_mask, special, s, generator):
    """The original's masking: [B, N] positions, original ids, weights, masked input."""
    import torch

    candidates = input_mask.bool()
    for token_id in (special.cls, special.sep, special.mask, special.pad):
        candidates &= input_ids != token_id
    length = input_mask.sum(-1).float()
    count = torch.clamp(torch.round(length * s.mask_prob).long(), 1, s.max_predictions)
    count = torch.minimum(count, candidates.sum(-1))
    keys = torch.where(candidates, torch.rand(input_ids.shape, generator=generator), -1.0)
    positions = torch.topk(keys, s.max_predictions, dim=-1).indices
    weights = (torch.arange(s.max_predictions)[None, :] < count[:, None]).float()
    positions = positions * weights.long()
    original = torch.gather(input_ids, 1, positions) * weights.long()
    use_mask = torch.rand(weights.shape, generator=generator) < 0.85
    corrupted = torch.where(use_mask, torch.full_like(original, special.mask), original)
    masked = input_ids.clone()
    rows = torch.arange(input_ids.shape[0])[:, None].expand_as(positions)
    keep = weights.bool()
    masked[rows[keep], positions[keep]] = corrupted[keep]
    return positions, original, weights, masked


def _tied_reference_models(settings, vocab_size):
    """HF-PyTorch generator and discriminator sharing their embedding block, and the original
    AdamW over their distinct parameters."""
    import transformers

    discriminator_config, generator_config = settings.model_configs(vocab_size)
    generator = transformers.ElectraForMaskedLM(_hf_config(generator_config, "ElectraForMaskedLM"))
    discriminator = transformers.ElectraForPreTraining(
        _hf_config(discriminator_config, "ElectraForPreTraining")
    )
    # The whole embedding block is shared; the generator's output layer is
    # tied to its (now shared) word embeddings.
    generator.electra.embeddings = discriminator.electra.embeddings
    generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
    named = dict(discriminator.named_parameters(prefix="discriminator"))
    for name, p in generator.named_parameters(prefix="generator"):
        if all(p is not q for q in named.values()):
            named[name] = p
    optimizer = OriginalAdamW(named.items(), settings.weight_decay_rate)
    return generator, discriminator, optimizer


def train_reference(settings, vocab_size, special, dataset, num_train_steps, log_every, seed, emit):
    """Trains the HF-PyTorch ELECTRA of `settings` and calls emit(row) once per window."""
    import torch

    torch.manual_seed(seed)
    generator, discriminator, optimizer = _tied_reference_models(settings, vocab_size)
    rng = torch.Generator().manual_seed(seed)
    generator.train()
    discriminator.train()
    window = _Window()
    start = time.time()
    for step, batch in enumerate(dataset.take(num_train_steps).as_numpy_iterator(), start=1):
        input_ids = torch.tensor(batch["input_ids"], dtype=torch.long)
        input_mask = torch.tensor(batch["input_mask"], dtype=torch.long)
        segment_ids = torch.tensor(batch["segment_ids"], dtype=torch.long)
        positions, original, weights, masked = _mask(input_ids, input_mask, special, settings, rng)
        hidden = generator.electra(
            input_ids=masked, attention_mask=input_mask, token_type_ids=segment_ids
        ).last_hidden_state
        # ElectraForMaskedLM's head, applied only where the loss is taken.
        hidden = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        logits = generator.generator_lm_head(generator.generator_predictions(hidden))
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), original, reduction="none")
        mlm_loss = (nll * weights).sum() / weights.sum().clamp(min=1.0)
        with torch.no_grad():
            probs = torch.softmax(logits / settings.temperature, dim=-1)
            sampled = torch.multinomial(
                probs.reshape(-1, probs.shape[-1]), 1, generator=rng
            ).reshape(original.shape)
            fake = input_ids.clone()
            rows = torch.arange(input_ids.shape[0])[:, None].expand_as(positions)
            keep = weights.bool()
            fake[rows[keep], positions[keep]] = sampled[keep]
            labels = (fake != input_ids).float() * input_mask.float()
        disc_logits = discriminator(
            input_ids=fake, attention_mask=input_mask, token_type_ids=segment_ids
        ).logits
        real = input_mask.float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            disc_logits, labels, reduction="none"
        )
        disc_loss = (bce * real).sum() / real.sum()
        loss = settings.gen_weight * mlm_loss + settings.disc_weight * disc_loss
        loss.backward()
        optimizer.step(_learning_rate(step - 1, settings, num_train_steps))
        with torch.no_grad():
            window.add(
                logits.argmax(-1) == original,
                weights,
                disc_logits,
                labels,
                real,
                sampled == original,
            )
        if step % log_every == 0:
            emit({"step": step, "seconds": round(time.time() - start, 1), **window.metrics()})
            window = _Window()


class _Window:
    """Metric sums over a window, defined as the pre-training metrics are."""

    def __init__(self):
        self.sums = dict(
            masked=0.0, mlm_correct=0.0, sampled_correct=0.0, real=0.0, disc_correct=0.0
        )
        self.positive = np.zeros(AUC_BINS)
        self.negative = np.zeros(AUC_BINS)

    def add(self, mlm_hits, weights, disc_logits, labels, real, sampled_hits):
        import torch

        self.sums["masked"] += float(weights.sum())
        self.sums["mlm_correct"] += float((mlm_hits.float() * weights).sum())
        self.sums["sampled_correct"] += float((sampled_hits.float() * weights).sum())
        self.sums["real"] += float(real.sum())
        self.sums["disc_correct"] += float(
            (((disc_logits > 0).float() == labels).float() * real).sum()
        )
        bins = torch.clamp((torch.sigmoid(disc_logits) * AUC_BINS).long(), max=AUC_BINS - 1)
        self.positive += np.bincount(
            bins.flatten().numpy(), (labels * real).flatten().numpy(), minlength=AUC_BINS
        )
        self.negative += np.bincount(
            bins.flatten().numpy(), ((1 - labels) * real).flatten().numpy(), minlength=AUC_BINS
        )

    def metrics(self):
        s = self.sums
        return {
            "masked_lm_accuracy": s["mlm_correct"] / s["masked"],
            "sampled_masked_lm_accuracy": s["sampled_correct"] / s["masked"],
            "disc_accuracy": s["disc_correct"] / s["real"],
            "disc_auc": histogram_auc(self.positive, self.negative),
        }


def main(argv):
    del argv
    for name in ("data_root", "output"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required")
    unknown = set(FLAGS.sides) - {"ours", "hf_torch"}
    if unknown:
        raise app.UsageError(f"--sides: unknown {sorted(unknown)}; use ours and/or hf_torch")
    common = [
        f"--num_train_steps={FLAGS.num_train_steps}",
        f"--iterations_per_loop={FLAGS.log_every}",
        *FLAGS.flags,
    ]
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    rtd_sweep.start_process(FLAGS.threads_per_run)
    if "hf_torch" in FLAGS.sides:
        import tensorflow as tf
        import torch

        from electra_tf.data import pretraining_input, tokenization

        tf.config.set_visible_devices([], "GPU")
        torch.set_num_threads(FLAGS.threads_per_run)
        vocab = tokenization.load_vocab(os.path.join(FLAGS.data_root, VOCAB_FILE))
        settings = reference_settings(FLAGS.base_flagfile, common)
        # The CLI's order: seed + start step (0), one file pipeline.
        dataset = pretraining_input.pretraining_dataset(
            os.path.join(FLAGS.data_root, FLAGS.data, SHARD_PREFIX + "*"),
            settings.max_seq_length,
            settings.train_batch_size,
            is_training=True,
            seed=settings.seed,
        )

        def emit(row):
            with open(FLAGS.output, "a") as f:
                f.write(json.dumps({"run": "hf_torch", **row}) + "\n")
            logging.info("hf_torch %s", row)

        train_reference(
            settings,
            len(vocab),
            tokenization.special_token_ids(vocab),
            dataset,
            FLAGS.num_train_steps,
            FLAGS.log_every,
            FLAGS.reference_seed,
            emit,
        )
    if "ours" in FLAGS.sides:
        rtd_sweep.run_one({"name": "ours", "data": FLAGS.data, "flags": common}, FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
