"""detector/adapt: gradient reversal, MMD, the teacher's pseudo-labels and strong view, the
schedule, the target images and the train.adapt config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.adapt.adaptation import ramp
from detector.adapt.adversarial import DomainClassifier, domain_loss, reverse_gradient
from detector.adapt.method import AdaptBatch
from detector.adapt.mmd import MMDAlignment, mmd
from detector.adapt.strong_augment import strong_augment
from detector.adapt.target import read_target
from detector.adapt.teacher import MeanTeacher, class_thresholds, pseudo_labels
from detector.config import config_from_dict
from detector.errors import ConfigError, DatasetError
from toy_detector import ToyDetector


def test_gradient_reversal_is_identity_forward_and_flips_the_gradient():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    weights = torch.randn(2, 3, 4, 4)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * weights).sum().backward()
    torch.testing.assert_close(x.grad, -0.5 * weights)


def test_domain_classifier_learns_normally_while_the_features_get_the_reversed_gradient():
    torch.manual_seed(0)
    classifier = DomainClassifier(3, 8)
    source = torch.randn(2, 3, 5, 5, requires_grad=True)
    target = torch.randn(2, 3, 5, 5, requires_grad=True)
    gradients = []
    for coefficient in (None, 2.0):
        classifier.zero_grad()
        source.grad = target.grad = None
        if coefficient is None:
            loss = domain_loss(classifier, source, target)
        else:
            loss = domain_loss(classifier, reverse_gradient(source, coefficient),
                               reverse_gradient(target, coefficient))
        loss.backward()
        gradients.append((source.grad.clone(), [p.grad.clone() for p in classifier.parameters()]))
    (plain_source, plain_classifier), (reversed_source, reversed_classifier) = gradients
    torch.testing.assert_close(reversed_source, -2.0 * plain_source)
    for plain, reversed_ in zip(plain_classifier, reversed_classifier):
        torch.testing.assert_close(reversed_, plain)
    assert plain_source.abs().sum() > 0


def test_domain_classifiers_leave_chance_within_a_fine_tunes_steps():
    """In a fine-tune at lr 0.001 the classifiers (their own lr 0.1, hidden layer at its
    standard init) must tell two shifted feature distributions apart within 30 SGD steps: with
    both layers at std 0.01 and the run's lr, the domain loss stayed at ln 2 (README)."""
    from detector.adapt.adaptation import DomainAdaptation
    from detector.adapt.adversarial import AdversarialAlignment

    torch.manual_seed(0)
    method = AdversarialAlignment(ToyDetector(["a"]), [16, 32], {})
    adaptation = DomainAdaptation.__new__(DomainAdaptation)  # only its param_groups
    adaptation.methods = torch.nn.ModuleList([method])
    groups = adaptation.param_groups(0.001, 5e-4)
    assert {group["lr"] for group in groups} == {0.1}
    optimizer = torch.optim.SGD(groups, lr=0.001, momentum=0.937)
    losses = []
    for _ in range(30):
        source = [torch.randn(4, c, 8, 8) for c in (16, 32)]
        target = [torch.randn(4, c, 8, 8) * 1.3 + 0.3 for c in (16, 32)]
        loss = method(AdaptBatch(None, [], [], source_features=source, target_features=target), 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert abs(losses[0] - np.log(2)) < 0.01  # starts at chance
    assert losses[-1] < 0.5, losses[-5:]
    with pytest.raises(ConfigError, match=r"options\.lr: expected a positive number, got 'fast'"):
        AdversarialAlignment(ToyDetector(["a"]), [16], {"lr": "fast"})


def test_mmd_is_zero_for_identical_batches_and_grows_with_the_shift():
    torch.manual_seed(0)
    x = torch.randn(6, 16)
    assert abs(mmd(x, x).item()) < 1e-6
    assert abs(mmd(x, x[torch.randperm(6)]).item()) < 1e-6  # order does not matter
    shifts = [mmd(x, x + shift).item() for shift in (0.2, 1.0, 3.0)]
    assert 0 < shifts[0] < shifts[1] < shifts[2]
    features = [torch.randn(3, 8, 4, 4), torch.randn(3, 16, 2, 2)]
    same = AdaptBatch(None, [], [], source_features=features, target_features=features)
    assert abs(MMDAlignment(None, [8, 16], {})(same, 1.0).item()) < 1e-6
    moved = AdaptBatch(None, [], [], source_features=features,
                       target_features=[f + 1 for f in features])
    assert MMDAlignment(None, [8, 16], {})(moved, 1.0).item() > 0.01


class ScriptedTeacher(torch.nn.Module):
    """Returns fixed detections (eval mode) for any image."""

    def __init__(self, scores, labels):
        super().__init__()
        self.scores, self.labels = torch.tensor(scores), torch.tensor(labels)

    def forward(self, images):
        assert not self.training
        boxes = torch.tensor([[1.0, 1.0, 5.0, 5.0]]).repeat(len(self.scores), 1)
        return [{"boxes": boxes, "scores": self.scores, "labels": self.labels} for _ in images]


def test_pseudo_labels_respect_the_per_class_threshold():
    teacher = ScriptedTeacher([0.9, 0.6, 0.4, 0.75, 0.5], [0, 0, 0, 1, 1])
    images = [torch.rand(3, 8, 8)] * 2
    kept = pseudo_labels(teacher, images, class_thresholds(["a", "b"], 0.5, "threshold"))
    assert [p["labels"].tolist() for p in kept] == [[0, 0, 1, 1]] * 2
    per_class = class_thresholds(["a", "b"], {"a": 0.8, "default": 0.7}, "threshold")
    assert per_class.tolist() == pytest.approx([0.8, 0.7])
    kept = pseudo_labels(teacher, images, per_class)[0]
    assert kept["labels"].tolist() == [0, 1] and kept["boxes"].shape == (2, 4)
    assert kept["boxes"].dtype == torch.float32
    with pytest.raises(ConfigError, match=r"\['c'\] are not classes of the model \(a, b\)"):
        class_thresholds(["a", "b"], {"c": 0.5}, "threshold")


def test_teacher_starts_as_a_copy_then_follows_the_student_slowly():
    torch.manual_seed(0)
    student = ToyDetector(["a", "b"])
    method = MeanTeacher(student, [8], {"decay": 0.9})
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    method.follow(student)  # the first call copies
    for name, value in method.teacher.state_dict().items():
        torch.testing.assert_close(value, student.state_dict()[name])
    before = method.teacher.head.weight.clone()
    with torch.no_grad():
        student.head.weight.add_(1.0)
    method.follow(student)
    torch.testing.assert_close(method.teacher.head.weight, before + 0.1)
    assert not any(p.requires_grad for p in method.teacher.parameters())


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_strong_view_keeps_the_geometry_and_changes_the_pixels(channels):
    torch.manual_seed(0)
    image = torch.rand(channels, 32, 40)
    views = [strong_augment(image) for _ in range(8)]
    assert all(v.shape == image.shape and 0 <= v.min() and v.max() <= 1 for v in views)
    assert all(not torch.equal(v, image) for v in views)
    assert torch.equal(image, image.clone())  # the input is left alone


def test_ramp_starts_at_zero_and_reaches_one():
    assert ramp(0.5, 1.0, 2.0) == 0.0 and ramp(1.0, 1.0, 2.0) == 0.0
    values = [ramp(1.0 + t, 1.0, 2.0) for t in (0.2, 0.6, 1.2, 2.0, 5.0)]
    assert values == sorted(values) and 0 < values[0] < 1 and values[-1] == pytest.approx(1.0, abs=1e-3)
    assert ramp(0.0, 0.0, 0.0) == 1.0


def write_images(folder: Path, count: int, size=(24, 20)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            folder / f"frame{index}.png")
    return folder


def test_target_folder_and_dataset_without_labels(tmp_path):
    records = read_target(str(write_images(tmp_path / "frames", 3)), ["lwir"])
    assert len(records) == 3 and records.modalities == ["lwir"]
    assert all(r.width == 24 and r.height == 20 and len(r.boxes) == 0 for r in records.images)
    from test_train_cli import make_yolo_dataset

    data = make_yolo_dataset(tmp_path / "labelled")
    records = read_target(str(data), ["rgb"], split="train")
    assert len(records) == 4 and all(len(r.boxes) == len(r.labels) == 0 for r in records.images)


def test_target_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^train\.adapt\.target: .*empty holds no images"):
        read_target(str(tmp_path / "empty"), ["rgb"])
    frames = write_images(tmp_path / "frames", 2)
    with pytest.raises(ConfigError, match="a folder of images, one modality, but the model takes rgb, lwir"):
        read_target(str(frames), ["rgb", "lwir"])
    with pytest.raises(DatasetError, match=r"^train\.adapt\.target: .*missing"):
        read_target(str(tmp_path / "missing"), ["rgb"])


BASE = {"model": {"arch": "yolov5n"}, "data": {"train": "d"}, "train": {"epochs": 1}}


def adapt_config(adapt: dict, lines=None):
    return config_from_dict({**BASE, "train": {"epochs": 1, "adapt": adapt}}, origin="r.yaml",
                            lines=lines)


def test_adapt_config_shorthand_and_defaults():
    config = adapt_config({"target": "frames/", "methods": ["mmd", {"name": "teacher", "weight": 2,
                                                                     "options": {"threshold": 0.6}}]})
    adapt = config.train.adapt
    assert adapt.target.source == "frames/" and adapt.batch_size is None
    assert [m.name for m in adapt.methods] == ["mmd", "teacher"]
    assert adapt.methods[0].weight == 1.0 and adapt.methods[1].weight == 2.0
    assert dict(adapt.methods[1].options) == {"threshold": 0.6}
    assert config_from_dict(BASE).train.adapt is None


def test_adapt_config_errors_name_the_key_and_the_valid_choices():
    with pytest.raises(ConfigError, match=r"^r\.yaml:7: train\.adapt\.methods\.0\.name: unknown "
                                          r"adaptation method 'coral'; valid methods: adversarial, mmd, teacher$"):
        adapt_config({"target": "f", "methods": ["coral"]}, lines={"train.adapt.methods.0": 7})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) thresh of method 'teacher'; valid "
                                          r"options: threshold, decay"):
        adapt_config({"target": "f", "methods": [{"name": "teacher", "options": {"thresh": 1}}]})
    with pytest.raises(ConfigError, match=r"train\.adapt\.methods\.0\.weight: expected >= 0"):
        adapt_config({"target": "f", "methods": [{"name": "mmd", "weight": -1}]})
    with pytest.raises(ConfigError, match="train.adapt.methods is empty"):
        adapt_config({"target": "f", "methods": []})
    with pytest.raises(ConfigError, match="missing key 'train.adapt.methods'"):
        adapt_config({"target": "f"})
