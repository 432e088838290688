#!/usr/bin/env python3
"""Writes sklearn_metrics.json: scikit-learn's values of every competition metric Quorum
offers (Training/Metric.swift), on seeded logits, for MetricTests to match.

Each case holds float32 logits [n, classes] (rounded to float32 before they are scored, so
both sides see the same numbers), labels, and the expected values:
  accuracy            accuracy_score
  balanced_accuracy   balanced_accuracy_score
  macro_f1, f_beta    fbeta_score(average="macro") at beta 1, 0.5 and 2
  quadratic_kappa     cohen_kappa_score(weights="quadratic")
  weighted_recall     the per-class recall_score of the classes present in the labels,
                      averaged with the case's class weights (np.average)
  map_at_k            the mean of 1/rank of the true class in the top k (Kaggle's MAP@k with
                      one true class: ml_metrics' apk), and at k = classes scikit-learn's
                      label_ranking_average_precision_score, which must agree with it
  nll                 log_loss of the softmax

Run: python3 Tests/TrainingTests/Fixtures/make_sklearn_metrics.py (numpy, scikit-learn).
"""
import json
import pathlib

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, cohen_kappa_score, fbeta_score,
                             label_ranking_average_precision_score, log_loss, recall_score)


def mean_average_precision_at_k(logits, labels, k):
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    score = 0.0
    for row, label in zip(order, labels):
        hits = np.nonzero(row == label)[0]
        score += 1.0 / (hits[0] + 1) if len(hits) else 0.0
    return score / len(labels)


def case(name, logits, labels, classes, class_weights):
    logits = logits.astype(np.float32)
    scores = logits.astype(np.float64)
    predicted = scores.argmax(axis=1)
    present = np.unique(labels)
    recalls = recall_score(labels, predicted, labels=present, average=None, zero_division=0)
    shifted = scores - scores.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    one_hot = np.eye(classes)[labels]
    lrap = label_ranking_average_precision_score(one_hot, scores)
    map_all = mean_average_precision_at_k(scores, labels, classes)
    assert abs(lrap - map_all) < 1e-12, (name, lrap, map_all)
    expected = {
        "accuracy": accuracy_score(labels, predicted),
        "balanced_accuracy": balanced_accuracy_score(labels, predicted),
        "macro_f1": fbeta_score(labels, predicted, beta=1, average="macro", zero_division=0),
        "f_beta:0.5": fbeta_score(labels, predicted, beta=0.5, average="macro", zero_division=0),
        "f_beta:2": fbeta_score(labels, predicted, beta=2, average="macro", zero_division=0),
        "quadratic_kappa": cohen_kappa_score(labels, predicted, weights="quadratic"),
        "weighted_recall:" + ",".join(str(w) for w in class_weights): float(np.average(recalls, weights=np.array(class_weights)[present])),
        "map_at_k:1": mean_average_precision_at_k(scores, labels, 1),
        "map_at_k:3": mean_average_precision_at_k(scores, labels, 3),
        f"map_at_k:{classes}": lrap,
        "nll": log_loss(labels, probabilities, labels=list(range(classes))),
    }
    return {"name": name, "classes": classes, "labels": labels.tolist(), "logits": logits.reshape(-1).tolist(),
            "expected": {key: float(value) for key, value in expected.items()}}


def main():
    generator = np.random.default_rng(20)
    cases = []
    # Imbalanced labels, logits that know the class a little: every metric away from 0 and 1.
    classes = 6
    labels = generator.choice(classes, size=300, p=[0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    logits = generator.normal(size=(300, classes)) + 1.5 * np.eye(classes)[labels]
    cases.append(case("imbalanced", logits, labels, classes, [1, 1, 2, 2, 5, 5]))
    # Ordinal labels, guesses off by one or two more often than far off: kappa's case.
    classes = 5
    labels = generator.integers(0, classes, size=250)
    guess = np.clip(labels + generator.integers(-2, 3, size=250) * (generator.random(250) < 0.6), 0, classes - 1)
    logits = generator.normal(scale=0.5, size=(250, classes)) + 2.0 * np.eye(classes)[guess]
    cases.append(case("ordinal", logits, labels, classes, [1, 2, 3, 4, 5]))
    # A class that never occurs in the labels but is predicted, and one never predicted.
    classes = 4
    labels = generator.choice([0, 1, 2], size=120)
    logits = generator.normal(size=(120, classes))
    logits[:, 3] += 0.4
    logits[:, 2] -= 3
    cases.append(case("absent class", logits, labels, classes, [3, 1, 1, 7]))
    path = pathlib.Path(__file__).with_name("sklearn_metrics.json")
    path.write_text(json.dumps({"cases": cases}) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
