"""Issue 10's contract: every family learns a class it has never seen, alone or among others.

Two checks, both through the public API (build_detector, load_model, fit, evaluate):

- every registered model: its head is remapped from a saved 2-class model to one class no
  pretrained row maps to (the case classic YOLOv5 once got wrong: a silent fresh row and no
  class loss for nc = 1); the fresh class must be detected on its object straight after the
  surgery, and its class loss must be on and reach the head. (Whether it then learns is the
  fine-tuning check's: a random network's scores and ultralytics' assigned class loss jump
  about too much over a few single-image steps to show a trend.)
- one representative per family (its smallest member, from the pretrained or converted init
  found in DETECTOR_WEIGHTS) fine-tuned 64 CPU steps (STEPS; fewer than the few hundred
  first planned, to keep this file near 3 CPU minutes) on generated shapes with
  (a) one non-COCO class, (b) three non-COCO classes, (c) a class mapped by name from COCO
  among two fresh ones; each must reach the val AP50 floor set below.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from detector import build_detector, evaluate, fit, list_models, load_model, read_dataset
from detector.checkpoint import describe_detector, load_checkpoint, save_checkpoint
from detector.data.dataset import DetectionDataset
from detector.data.synthetic import make_synthetic_dataset
from detector.data.transforms import build_transforms
from detector.models.registry import get_model_entry

SIZE = 128  # training and evaluation size (the generated images are 160 x 128)

# Build options that make each family small and quick on a CPU; evaluation at SIZE.
OPTIONS = {
    "rcnn": {"min_size": SIZE, "max_size": 160, "box_batch_size_per_image": 32,
             "rpn_post_nms_top_n_train": 100, "rpn_post_nms_top_n_test": 100},
    "yolo": {"image_size": SIZE},
    "yolov5": {"image_size": SIZE},
}
# The loss term of each family that trains the class rows.
CLASS_TERM = {"rcnn": "loss_classifier", "yolo": "cls", "yolov5": "cls"}
# The slowest builds of the quick check (ResNet-50 bodies, YOLO m): 2-6 s of CPU each on one
# thread, several times that on a loaded 2-core machine.
HEAVY = {"fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50",
         "yolov8m", "yolo11m"}


def family(arch: str) -> str:
    return get_model_entry(arch).family


def test_every_family_has_a_representative():
    assert {family(arch) for arch in list_models()} == {family(a) for a in REPRESENTATIVES}


# --- every registered model: a fresh class row is detected and gets a class loss --------------


def _one_object_image():
    """A 96 x 96 image [3,H,W] in 0..1 with one red disc, and its target."""
    image = torch.full((3, 96, 96), 0.35)
    ys, xs = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    disc = (xs - 50) ** 2 + (ys - 44) ** 2 <= 18 ** 2
    image[0][disc], image[1][disc], image[2][disc] = 0.9, 0.15, 0.1
    target = {"boxes": torch.tensor([[32.0, 26.0, 69.0, 63.0]]), "labels": torch.tensor([0])}
    return image, target


def _fresh_class_score(detector, image, box) -> float:
    """Highest score of label 0 among the detections centred inside `box` [1,4] xyxy px (box
    quality aside: a random network's boxes are poor, its class scores are what is checked)."""
    detector.eval()
    with torch.no_grad():
        out = detector([image])[0]
    centres = (out["boxes"][:, :2] + out["boxes"][:, 2:]) / 2
    inside = ((centres >= box[0, :2]) & (centres <= box[0, 2:])).all(1)
    hits = (out["labels"] == 0) & inside
    return float(out["scores"][hits].max()) if hits.any() else 0.0


def _build_small(arch: str, class_names: list[str]):
    options = dict(OPTIONS[family(arch)])
    if arch == "yolo_yaml":
        options["cfg"] = "yolov8n.yaml"
    if arch == "yolov5_classic":  # built from a yaml: the one a yolov5n checkpoint records
        options["yaml"] = describe_detector(_build_small("yolov5n", class_names))["build_args"]["yaml"]
    return build_detector(arch, class_names, weights=None, **options)


def fresh_head(arch: str, tmp_path):
    """`arch` (random weights) saved with classes person and car, loaded back for the one class
    'blob', which maps to no row of the saved head: the head surgery gives it a fresh row."""
    torch.manual_seed(0)
    source = _build_small(arch, ["person", "car"])
    path = tmp_path / "two.pt"
    save_checkpoint(path, {**describe_detector(source), "model": source.state_dict(), "epoch": 0})
    detector = load_model(path, class_names=["blob"], class_map="auto")
    assert detector.class_names == ["blob"]
    return detector


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.slow) if a in HEAVY else a
                                  for a in list_models()])
def test_a_fresh_single_class_of_every_model_is_detected_and_has_a_class_loss(arch, tmp_path):
    detector = fresh_head(arch, tmp_path)
    image, target = _one_object_image()
    # detectable from the surgery on: a silent fresh row (classic YOLOv5 once: p = 1e-4, so
    # obj x cls stayed under the 0.001 threshold) gives no detection at all
    score = _fresh_class_score(detector, image, target["boxes"])
    assert score > 0, f"{arch}: the fresh class is not detected on its object"
    # learnable: the class term is on for a single class and reaches the head
    class_term = detector.train()([image], [target])[CLASS_TERM[family(arch)]]
    assert class_term.requires_grad and class_term > 0, f"{arch}: no class loss"
    head = [p for p in detector.parts()["head"].parameters() if p.requires_grad]
    gradients = torch.autograd.grad(class_term, head, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in gradients), f"{arch}: no gradient"


# --- one representative per family: 64 steps, three class sets --------------------------------

# The generated shapes renamed: none of these is a COCO class but 'sports ball' (the circles).
CASES = {
    "one_new": ["blob"],                               # every shape is one class
    "three_new": ["circle", "square", "triangle"],
    "mapped_and_new": ["sports ball", "square", "triangle"],
}
# arch -> (init, fine-tuning settings). Inits: yolov5n.pt; `detector convert --to yolov5nu` of
# it (the layers before the head carried, the head fresh); ImageNet MobileNetV2 features.
REPRESENTATIVES = {
    "yolov5_classic": ("yolov5n.pt", {"batch_size": 8, "lr": 0.01, "momentum": 0.937,
                                      "weight_decay": 5e-4}),
    "yolov5nu": ("converted", {"batch_size": 8, "lr": 0.01, "momentum": 0.937,
                               "weight_decay": 5e-4}),
    "fasterrcnn_mobilenet_v2": ("mobilenet_v2_imagenet.pth", {"batch_size": 4, "lr": 0.02,
                                                              "momentum": 0.9,
                                                              "weight_decay": 1e-4}),
}
STEPS = 64


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """{case: card path}: 64 train + 24 val generated RGB images, relabelled per case."""
    root = tmp_path_factory.mktemp("shapes")
    make_synthetic_dataset(root, num_train=64, num_val=24, size=(160, 128), seed=3)
    cards = {}
    for case, names in CASES.items():
        splits = {}
        for split in ("train", "val"):
            coco = json.loads((root / "annotations" / f"{split}.json").read_text())
            if len(names) == 1:
                for annotation in coco["annotations"]:
                    annotation["category_id"] = 1
            coco["categories"] = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
            name = f"annotations/{case}_{split}.json"
            (root / name).write_text(json.dumps(coco))
            splits[split] = {"images": split, "annotations": name}
        card = {"format": "coco", "root": str(root), "classes": names,
                "modalities": {"rgb": "rgb"}, "splits": splits}
        cards[case] = root / f"{case}.yaml"
        cards[case].write_text(yaml.safe_dump(card, sort_keys=False))
    return cards


@pytest.fixture(scope="module")
def converted(tmp_path_factory, shared_weights):
    """yolov5n.pt carried into yolov5nu by `detector convert`, evaluated at SIZE."""
    from detector.cli import main

    out = tmp_path_factory.mktemp("converted") / "yolov5nu.pt"
    assert main(["convert", "--model", str(shared_weights / "yolov5n.pt"), "--to", "yolov5nu",
                 "--out", str(out)]) == 0
    state = load_checkpoint(out)
    state["build_args"]["image_size"] = SIZE  # plain data: how the model is rebuilt
    save_checkpoint(out, state)
    return out


def _representative(arch: str, class_names: list[str], shared_weights, converted):
    init, _ = REPRESENTATIVES[arch]
    if init == "converted":
        return load_model(converted, class_names=class_names, class_map="auto")
    options = OPTIONS[family(arch)]
    if family(arch) == "rcnn":
        return build_detector(arch, class_names, backbone_weights=shared_weights / init,
                              anchor_scale=0.5, **options)
    return build_detector(arch, class_names, weights=shared_weights / init, class_map="auto",
                          **options)


def fine_tune_ap50(arch: str, card, shared_weights, converted, out_dir) -> float:
    """Val AP50 of `arch` fine-tuned STEPS steps (flips, its REPRESENTATIVES settings) on `card`'s train split."""
    train_records, val_records = read_dataset(card, split="train"), read_dataset(card, split="val")
    torch.manual_seed(0)
    detector = _representative(arch, list(train_records.class_names), shared_weights, converted)
    transforms = build_transforms([{"name": "HorizontalFlip", "p": 0.5}], image_size=SIZE)
    train = DetectionDataset(train_records, transforms=transforms)
    _, settings = REPRESENTATIVES[arch]
    epochs = math.ceil(STEPS / math.ceil(len(train) / settings["batch_size"]))
    fit(detector, train, None, out_dir=out_dir, epochs=epochs, warmup_epochs=1, amp=False, workers=0, device="cpu", show_progress=False, **settings)
    return evaluate(detector, val_records, batch_size=8, device="cpu",
                    progress=False).stats["AP50"]


# Val AP50 floors, set from the fixed code: about 2/3 of the value measured (in the comment;
# 64 steps, one CPU thread), a margin for CPU results that differ with the thread count, and
# far above what a class that never learns gives (0.000: classic YOLOv5 on one new class
# before its fix, which also scored 0.681 on `one_new` with the silent 1e-4 fresh row).
# Faster R-CNN starts from an ImageNet backbone alone (RPN and heads fresh): at 64 steps its
# three-class run is early on its learning curve, so that floor only says it has started.
FLOORS = {
    ("yolov5_classic", "one_new"): 0.6,            # 0.915
    ("yolov5_classic", "three_new"): 0.55,         # 0.849
    ("yolov5_classic", "mapped_and_new"): 0.55,    # 0.858
    ("yolov5nu", "one_new"): 0.35,                 # 0.598 (0.857 at 96 steps)
    ("yolov5nu", "three_new"): 0.5,                # 0.824
    ("yolov5nu", "mapped_and_new"): 0.4,           # 0.652
    ("fasterrcnn_mobilenet_v2", "one_new"): 0.4,   # 0.674 (0.886 at 96 steps)
    ("fasterrcnn_mobilenet_v2", "three_new"): 0.05,  # 0.104
    # no (c) for fasterrcnn_mobilenet_v2: from an ImageNet backbone there is no pretrained head,
    # so no class maps and (c) is (b) under other names
}


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("arch,case", sorted(FLOORS))
def test_fine_tuning_learns_new_classes(arch, case, shapes, shared_weights, converted, tmp_path):
    ap50 = fine_tune_ap50(arch, shapes[case], shared_weights, converted, tmp_path / "run")
    assert ap50 >= FLOORS[arch, case], f"{arch} {case}: val AP50 {ap50:.3f}"
