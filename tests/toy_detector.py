"""A tiny Detector that keeps the contract, for fast engine tests (not in the model registry).

Parts: stem (conv + BatchNorm), backbone.0 (conv + BatchNorm), backbone.1 (conv), neck (1x1
conv), head (1x1 conv to 4 box + K class channels, averaged over the image). It predicts one box
per image. Each loss is a mean over images, so the gradient of a batch of B images equals the
mean of the gradients of its halves: what DDP parity needs (BatchNorm, which mixes images within
a batch, sits in parts the parity test freezes).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from detector.models.detector import Detector

SIZE = 32  # the toy resizes every image to SIZE x SIZE, as real adapters resize internally


class ToyDetector(Detector):
    arch = "toy"

    def __init__(self, class_names, in_channels: int = 3, width: int = 8):
        super().__init__()
        self.class_names = list(class_names)
        self.in_channels = in_channels
        self.modalities = ["rgb"] if in_channels == 3 else ["lwir"]
        self.width = width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.stage0 = nn.Sequential(nn.Conv2d(width, width, 3, 2, 1, bias=False),
                                    nn.BatchNorm2d(width), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.ReLU())
        self.neck = nn.Conv2d(width, width, 1)
        self.head = nn.Conv2d(width, 4 + len(self.class_names), 1)

    def parts(self):
        return {"stem": self.stem, "backbone.0": self.stage0, "backbone.1": self.stage1,
                "neck": self.neck, "head": self.head}

    def build_args(self):
        return {"width": self.width}

    def stem_conv(self):
        return self.stem[0]

    def set_stem_conv(self, conv):
        self.stem[0] = conv
        self.in_channels = conv.in_channels

    def features(self, images):
        batch = torch.stack([F.interpolate(image[None], size=(SIZE, SIZE), mode="bilinear",
                                           align_corners=False)[0] for image in images])
        return [self.neck(self.stage1(self.stage0(self.stem(batch))))]

    def _outputs(self, images):
        out = self.head(self.features(images)[0]).mean(dim=(2, 3))  # [B, 4 + K]
        return out[:, :4].sigmoid(), out[:, 4:]  # boxes as (x1, y1, w, h) fractions, logits

    def forward(self, images, targets=None):
        boxes, logits = self._outputs(images)
        if self.training:
            box_losses, class_losses = [], []
            for i, (image, target) in enumerate(zip(images, targets)):
                if len(target["boxes"]) == 0:
                    box_losses.append(boxes[i].sum() * 0)
                    class_losses.append(logits[i].sum() * 0)
                    continue
                height, width = image.shape[-2:]
                x1, y1, x2, y2 = target["boxes"][0]
                wanted = torch.stack([x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height])
                box_losses.append(F.l1_loss(boxes[i], wanted.to(boxes.dtype)))
                class_losses.append(F.cross_entropy(logits[i][None], target["labels"][:1]))
            return {"loss_box": torch.stack(box_losses).mean(),
                    "loss_cls": torch.stack(class_losses).mean()}
        results = []
        for i, image in enumerate(images):
            height, width = image.shape[-2:]
            x, y, w, h = boxes[i]
            box = torch.stack([x * width, y * height, (x + w) * width, (y + h) * height])
            probabilities = logits[i].softmax(0)
            results.append({"boxes": box[None], "scores": probabilities.max()[None],
                            "labels": probabilities.argmax()[None]})
        return results


class ToyDataset(Dataset):
    """`count` random images (3 x 40 x 48) with one box each, reproducible from `seed`.

    `noise` adds fresh uniform noise from the global torch RNG on every read (a stand-in for
    random augmentation: a resumed run matches only if the RNG state is restored); `delay`
    sleeps per read (to slow a run down enough to kill it mid-epoch). Images listed in
    `nan_images` contain a NaN pixel (for the non-finite loss test)."""

    def __init__(self, count: int = 8, num_classes: int = 2, seed: int = 0, nan_images=(),
                 noise: float = 0.0, delay: float = 0.0):
        self.noise, self.delay = noise, delay
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(count, 3, 40, 48, generator=generator)
        for index in nan_images:
            self.images[index, 0, 0, 0] = float("nan")
        corners = torch.rand(count, 2, generator=generator) * torch.tensor([20.0, 16.0])
        sizes = 4 + torch.rand(count, 2, generator=generator) * torch.tensor([20.0, 16.0])
        self.boxes = torch.cat([corners, corners + sizes], dim=1)
        self.labels = torch.randint(0, num_classes, (count,), generator=generator)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        target = {"boxes": self.boxes[index][None].clone(), "labels": self.labels[index][None].clone(),
                  "ignore": torch.zeros(0, 4), "index": index, "image_id": f"toy{index}"}
        if self.delay:
            time.sleep(self.delay)
        image = self.images[index].clone()
        if self.noise:
            image = image + self.noise * torch.rand(image.shape)
        return image, target


def collate(batch):
    images, targets = zip(*batch)
    return list(images), list(targets)


class ScriptedMetrics:
    """What evaluate() returns, reduced to the stats the engine reads."""

    def __init__(self, ap: float):
        self.stats = {"AP": ap, "AP50": min(1.0, 2 * ap)}


def box_error_metric(detector, data, **kwargs):
    """A cheap, real validation metric: 1 / (1 + mean L1 error of the predicted box, in px)."""
    detector.eval()
    errors = []
    with torch.no_grad():
        for index in range(len(data)):
            image, target = data[index]
            predicted = detector([image])[0]["boxes"][0]
            errors.append((predicted - target["boxes"][0]).abs().mean())
    return ScriptedMetrics(float(1.0 / (1.0 + torch.stack(errors).mean())))


class CentreBoxDetector(Detector):
    """Predicts one box per image: the middle half of the image it is given, class 0, score 0.8
    (for evaluation tests). Records the size of every batch it sees; it must only ever be run in
    eval mode without gradients."""

    arch = "centre_box"

    def __init__(self, class_names=("a", "b")):
        super().__init__()
        self.class_names = list(class_names)
        self.modalities = ["rgb"]
        self.scale = nn.Parameter(torch.ones(()))
        self.batches: list[int] = []

    def forward(self, images, targets=None):
        assert not self.training and not torch.is_grad_enabled()
        self.batches.append(len(images))
        outputs = []
        for image in images:
            height, width = image.shape[-2:]
            box = torch.tensor([[width / 4, height / 4, 3 * width / 4, 3 * height / 4]])
            outputs.append({"boxes": box * self.scale, "scores": torch.tensor([0.8]),
                            "labels": torch.tensor([0])})
        return outputs
