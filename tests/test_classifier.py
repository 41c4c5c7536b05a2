"""The in-domain classifier: shapes, and its training script end to end on a tiny image folder."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from cvae_lib.models.classifier import Classifier, ClassifierConfig, classifier_loss
from cvae_lib.weights import load_weights, read_metadata

ROOT = Path(__file__).resolve().parents[1]


def test_shapes_and_loss():
    model = Classifier(ClassifierConfig(widths=(8, 16, 32), stem=8))
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    assert model(x).shape == (4, 10) and model.features(x).shape == (4, 32)
    loss, logs = classifier_loss(model, x, y)
    assert loss.ndim == 0 and 0 <= float(logs["accuracy"]) <= 1


def test_training_script_ships_weights_with_accuracy(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(image_folder))
    sys.path.insert(0, str(ROOT / "tools"))
    import train_classifier
    train_classifier.main(["--epochs", "1", "--max-steps", "1", "--batch-size", "8",
                           "--train-per-class", "3", "--test-per-class", "3", "--out", str(tmp_path)])
    meta = read_metadata(tmp_path / "classifier.safetensors")
    assert meta["metrics"]["n_test"] == 30 and 0 <= meta["metrics"]["test_accuracy"] <= 1
    model = load_weights(tmp_path / "classifier.safetensors", Classifier, ClassifierConfig)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
