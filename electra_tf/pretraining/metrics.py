"""Pre-training metrics, computed from sums so they aggregate over replicas and steps."""

import numpy as np

AUC_BINS = 200


def _ratio(numerator, denominator):
    return float(numerator) / float(denominator) if denominator else float("nan")


def histogram_auc(positive_histogram, negative_histogram):
    """ROC AUC from score histograms (ties within a bin count one half)."""
    positives = np.asarray(positive_histogram, np.float64)
    negatives = np.asarray(negative_histogram, np.float64)
    if positives.sum() == 0 or negatives.sum() == 0:
        return float("nan")
    negatives_below = np.cumsum(negatives) - negatives
    wins = np.sum(positives * (negatives_below + 0.5 * negatives))
    return float(wins / (positives.sum() * negatives.sum()))


def pretraining_metrics(sums, steps):
    """The original's metric set from summed step statistics over `steps` steps."""
    return {
        "loss": _ratio(sums["loss"], steps),
        "masked_lm_loss": _ratio(sums["masked_lm_loss_sum"], sums["masked_tokens"]),
        "masked_lm_accuracy": _ratio(sums["masked_lm_correct"], sums["masked_tokens"]),
        "sampled_masked_lm_accuracy": _ratio(sums["sampled_correct"], sums["masked_tokens"]),
        "disc_loss": _ratio(sums["disc_loss_sum"], sums["real_tokens"]),
        "disc_accuracy": _ratio(sums["disc_correct"], sums["real_tokens"]),
        "disc_precision": _ratio(sums["disc_true_positives"], sums["disc_predicted_positives"]),
        "disc_recall": _ratio(sums["disc_true_positives"], sums["disc_label_positives"]),
        # 1 - this is the accuracy of answering "original" everywhere.
        "replaced_fraction": _ratio(sums["disc_label_positives"], sums["real_tokens"]),
        "disc_auc": histogram_auc(sums["disc_positive_histogram"], sums["disc_negative_histogram"]),
    }
