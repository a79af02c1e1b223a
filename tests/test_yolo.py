"""Ultralytics adapter: every registered arch trains and evaluates, checkpoints written by
ultralytics import exactly and safely, head remap and stem adaptation keep the pretrained outputs."""

from __future__ import annotations

import copy

import pytest
import torch

from detector.data.coco_classes import COCO_CLASSES
from detector.errors import CheckpointError, ConfigError
from detector.models import letterbox
from detector.models.loading import load_model
from detector.models.registry import build_detector
from detector.models.surgery import adapt_stem, remap_classes
from detector.models.ultralytics import adapter as yolo
from detector.models.ultralytics.loss import LOSS_SCALE

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)

SIZE = 64  # tiny inputs keep every test on CPU fast


def _targets():
    return [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 50.0]]),
             "labels": torch.tensor([1, 0])},
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]


def _ultralytics_model(yaml_name="yolov8n.yaml", seed=0):
    """A randomly initialised ultralytics DetectionModel with COCO names, its class biases spread
    out so that scores vary (a fresh head scores everything ~1e-4)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel(yaml_name, nc=80, verbose=False)
    with torch.no_grad():
        for sequence in model.model[-1].cv3:
            sequence[-1].bias.normal_(-3.0, 1.5)
    model.names = dict(enumerate(COCO_CLASSES))
    model.args = get_cfg()
    return model.eval()


def _save_like_ultralytics(model, path):
    """What ultralytics writes (trainer.save_model + strip_optimizer): the whole module pickled,
    in half precision, with plain metadata around it."""
    torch.save({"date": "2026-01-01", "version": "8.4.190", "license": "AGPL-3.0",
                "model": copy.deepcopy(model).half(), "ema": None, "optimizer": None,
                "updates": None, "epoch": -1, "best_fitness": None,
                "train_args": {"imgsz": 640, "batch": 16, "model": "yolov8n.yaml"}}, path)


def _half_rounded(model):
    """`model` with its weights rounded to half precision, as the checkpoint stores them."""
    return copy.deepcopy(model).half().float().eval()


@pytest.fixture(scope="module")
def coco_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ultralytics") / "yolov8n_coco.pt"
    model = _ultralytics_model()
    _save_like_ultralytics(model, path)
    return path, _half_rounded(model)


def _check_losses_and_detections(detector):
    """What is the family's own beyond the contract (tests/test_detector_contract.py): ultralytics'
    loss names, and eval keeps its conf_threshold and max_detections."""
    losses = detector.train()([torch.rand(3, SIZE, SIZE), torch.rand(3, SIZE, SIZE)], _targets())
    assert set(losses) in ({"box", "cls", "dfl"}, {"box", "cls", "l1"})
    detector.eval()
    with torch.no_grad():
        outputs = detector([torch.rand(3, 50, 70), torch.rand(3, SIZE, SIZE)])
    for output in outputs:
        assert len(output["scores"]) <= detector.max_detections
        assert (output["scores"] > detector.conf_threshold).all()
    return outputs


def test_losses_and_eval_thresholds():
    detector = build_detector("yolov8n", ["cell", "platelet", "other"], image_size=SIZE,
                              conf_threshold=1e-5, max_detections=5)
    outputs = _check_losses_and_detections(detector)
    # a fresh head scores ~1e-4: far more than 5 boxes pass the threshold, and 5 are kept
    assert max(len(output["scores"]) for output in outputs) == 5


@pytest.mark.parametrize("arch", ["yolov8n", "yolo11n", "yolov10n"])
def test_parts_hold_every_parameter_once_in_order(arch):
    detector = build_detector(arch, ["a"])
    parts = detector.parts()
    names = list(parts)
    backbone = [name for name in names if name.startswith("backbone.")]
    assert names == ["stem"] + [f"backbone.{i}" for i in range(len(backbone))] + ["neck", "head"]
    # the backbone ends at the yaml's last backbone layer (SPPF for v8, C2PSA/PSA after it)
    assert len(backbone) + 1 == len(detector.model.yaml["backbone"])
    assert parts["head"] is detector.model.model[-1]
    seen = [id(p) for part in parts.values() for p in part.parameters()]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in detector.parameters()}


def test_losses_are_ultralytics_loss_of_the_same_batch_scaled():
    detector = build_detector("yolov8n", ["a", "b"]).train()
    torch.manual_seed(3)
    # two sizes: the batch is padded right/bottom to 64 x 64, boxes stay where they are
    images = [torch.rand(3, SIZE, SIZE), torch.rand(3, 48, SIZE)]
    targets = _targets()
    losses = detector(images, targets)
    batch = torch.full((2, 3, SIZE, SIZE), 114 / 255)
    batch[0], batch[1, :, :48] = images[0], images[1]
    # ultralytics' batch written out by hand: cxcywh normalised by the padded 64 x 64 batch
    reference_batch = {"img": batch, "batch_idx": torch.tensor([0.0, 0.0]),
                       "cls": torch.tensor([[1.0], [0.0]]),
                       "bboxes": torch.tensor([[17.0, 23.0, 26.0, 34.0], [40.0, 30.0, 40.0, 40.0]]) / SIZE}
    detector.model.criterion = None
    reference, _ = detector.model.loss(reference_batch)
    expected = reference / 2 * LOSS_SCALE
    got = torch.stack([losses["box"], losses["cls"], losses["dfl"]])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    detector = build_detector("yolov8n", ["a", "b"]).train()
    optimizer = torch.optim.SGD(detector.parameters(), lr=0.01 / 16 * 2, momentum=0.9)
    images, targets = [torch.rand(3, SIZE, SIZE)] * 2, [_targets()[0]] * 2
    first = None
    for _ in range(8):
        loss = sum(detector(images, targets).values())
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert sum(detector(images, targets).values()).item() < 0.9 * first


def test_eval_matches_ultralytics_nms_on_an_unpadded_image(coco_checkpoint):
    from ultralytics.utils.nms import non_max_suppression

    path, reference = coco_checkpoint
    detector = yolo.import_checkpoint(path)
    detector.image_size = SIZE
    image = torch.rand(3, SIZE, SIZE)
    ours = detector([image])[0]
    theirs = non_max_suppression(reference(image[None])[0], 0.001, 0.7, multi_label=True,
                                 max_det=300)[0]
    assert len(theirs) > 10  # the spread-out biases leave plenty of candidates
    # the same detections (order among equal scores may differ): compare them sorted
    ours_rows = torch.cat([ours["boxes"], ours["scores"][:, None], ours["labels"][:, None].float()], 1)
    assert ours_rows.shape == theirs.shape
    theirs_rows = theirs.detach().clone()
    theirs_rows[:, :4] = theirs_rows[:, :4].clamp(0, SIZE)
    torch.testing.assert_close(_sorted_rows(ours_rows), _sorted_rows(theirs_rows), rtol=1e-4, atol=1e-3)


def _sorted_rows(rows):
    """[N,6] detections sorted by label, then score, then x1."""
    for column in (0, 4, 5):
        rows = rows[torch.argsort(rows[:, column], stable=True)]
    return rows


def test_letterbox_maps_back_to_the_original_pixels():
    # a bright rectangle in a 45 x 100 image: where the letterbox puts it, mapped back, is where
    # it was (to the pixel: resizing blurs one pixel of edge)
    image = torch.zeros(3, 45, 100)
    image[:, 10:30, 20:60] = 1.0
    batch, placements = letterbox.letterbox_batch([image, torch.zeros(3, 100, 30)], 64, 32)
    assert batch.shape == (2, 3, 64, 64)
    scale, left, top = placements[0]
    assert top > 0 and left == 0  # centred vertically, as ultralytics' letterbox
    rows, cols = torch.nonzero(batch[0, 0] > 0.5, as_tuple=True)
    found = torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)
    back = (found - torch.tensor([left, top, left, top])) / scale
    torch.testing.assert_close(back, torch.tensor([20.0, 10.0, 60.0, 30.0]), atol=2.0, rtol=0)


def test_ultralytics_checkpoint_imports_with_identical_outputs(coco_checkpoint):
    path, reference = coco_checkpoint
    detector = load_model(path)  # through loading.py's FOREIGN_IMPORTERS
    assert isinstance(detector, yolo.YOLODetector) and not detector.training
    assert detector.arch == "yolov8n" and detector.class_names == list(COCO_CLASSES)
    x = torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(detector.model(x)[0], reference(x)[0], rtol=0, atol=0)
    # and it is rebuilt from its own description, as a run checkpoint would be
    rebuilt = build_detector(detector.arch, detector.class_names, in_channels=detector.in_channels,
                             **detector.build_args())
    rebuilt.load_state_dict(detector.state_dict())
    torch.testing.assert_close(rebuilt.eval().model(x)[0], reference(x)[0], rtol=0, atol=0)


def test_custom_yaml_checkpoint_imports_as_yolo_yaml(tmp_path):
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load("yolov8n.yaml")
    cfg["scales"]["n"] = [0.33, 0.125, 1024]  # yolov8's layers at a width no registered arch has
    cfg["yaml_file"] = "my_tiny_net.yaml"
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(1)
    model = DetectionModel(copy.deepcopy(cfg), nc=2, verbose=False).eval()
    model.names = {0: "rbc", 1: "wbc"}
    _save_like_ultralytics(model, tmp_path / "best.pt")
    detector = yolo.import_checkpoint(tmp_path / "best.pt")
    assert detector.arch == "yolo_yaml" and detector.class_names == ["rbc", "wbc"]
    x = torch.rand(1, 3, SIZE, SIZE)
    torch.testing.assert_close(detector.model(x)[0], _half_rounded(model)(x)[0], rtol=0, atol=0)
    args = detector.build_args()
    rebuilt = build_detector("yolo_yaml", ["rbc", "wbc"], **args)
    rebuilt.load_state_dict(detector.state_dict())  # same layers, same shapes
    torch.testing.assert_close(rebuilt.eval().model(x)[0], detector.model(x)[0], rtol=0, atol=0)


def test_yolo_yaml_builds_from_a_yaml_file(tmp_path):
    import yaml

    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load("yolo11n.yaml")
    path = tmp_path / "yolo11n-mine.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if k not in ("scale", "yaml_file")}))
    detector = build_detector("yolo_yaml", ["a", "b", "c"], cfg=str(path), image_size=SIZE)
    reference = build_detector("yolo11n", ["a", "b", "c"])
    assert detector.build_args()["cfg"]["backbone"] == reference.model.yaml["backbone"]
    assert sum(p.numel() for p in detector.parameters()) == sum(p.numel() for p in reference.parameters())
    _check_losses_and_detections(detector)
    with pytest.raises(ConfigError, match="no_such.yaml"):
        build_detector("yolo_yaml", ["a"], cfg=str(tmp_path / "no_such.yaml"))


class _CreatesFile:
    """Unpickling this would call builtins.open(target, 'w') and create the file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_hostile_checkpoint_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "yolov8n.pt"
    torch.save({"model": _CreatesFile(target), "train_args": {}}, path)
    with pytest.raises(CheckpointError, match="refused"):
        yolo.import_checkpoint(path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_model(path)
    with pytest.raises(CheckpointError):
        build_detector("yolov8n", ["a"], weights=str(path))
    assert not target.exists()


def test_files_without_an_ultralytics_model_are_not_claimed(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"model": {"layer.weight": torch.zeros(2)}, "epoch": 3}, path)
    assert yolo.import_checkpoint(path) is None


def test_weights_of_another_arch_are_refused(coco_checkpoint):
    path, _ = coco_checkpoint
    with pytest.raises(ConfigError, match="yolo11n"):
        build_detector("yolo11n", list(COCO_CLASSES), weights=str(path))


def test_head_remap_keeps_the_pretrained_rows_of_mapped_classes(coco_checkpoint):
    path, reference = coco_checkpoint
    names = ["Car", "Thing", "Person"]
    detector = build_detector("yolov8n", names, weights=str(path), class_map="auto").eval()
    assert detector.class_names == names and detector.model.model[-1].nc == 3
    x = torch.rand(2, 3, SIZE, SIZE)
    ours, theirs = detector.model(x)[0], reference(x)[0]
    torch.testing.assert_close(ours[:, :4], theirs[:, :4], rtol=0, atol=0)  # box branch kept
    torch.testing.assert_close(ours[:, 4 + 0], theirs[:, 4 + COCO_CLASSES.index("car")], rtol=0, atol=0)
    torch.testing.assert_close(ours[:, 4 + 2], theirs[:, 4 + COCO_CLASSES.index("person")], rtol=0, atol=0)
    # the unmapped class starts from ultralytics' prior: about 5 objects per 640 x 640 image
    assert ours[:, 4 + 1].max() < 0.01
    # the head keeps the pretrained (80-class) width of its class branch; build_args says so, and
    # a rebuild from them takes the same weights (what loading a run checkpoint does)
    rebuilt = build_detector("yolov8n", names, **detector.build_args())
    rebuilt.load_state_dict(detector.state_dict())
    torch.testing.assert_close(rebuilt.eval().model(x)[0], ours, rtol=0, atol=0)
    # and the remapped model trains with 3 classes
    detector.train()
    losses = detector([x[0], x[1]], [{"boxes": torch.tensor([[1.0, 1.0, 20.0, 20.0]]),
                                       "labels": torch.tensor([1])}] * 2)
    assert torch.isfinite(sum(losses.values()))


def test_head_remap_of_an_nms_free_head_covers_both_branches():
    detector = build_detector("yolov10n", ["a", "b", "c"]).eval()
    head = detector.model.model[-1]
    old_rows = [sequence[-1].weight[2].clone() for sequence in head.one2one_cv3]
    remap_classes(detector, ["x", "c"], {"c": "c"}, verbose=False)
    for sequence, old in zip(head.one2one_cv3, old_rows):
        assert sequence[-1].out_channels == 2 and torch.equal(sequence[-1].weight[1], old)
    assert all(sequence[-1].out_channels == 2 for sequence in head.cv3)
    _check_train_and_eval_channels(detector, 3)


def test_stem_sum_on_grey_equals_rgb_on_replicated_grey(coco_checkpoint):
    path, reference = coco_checkpoint
    grey = build_detector("yolov8n", list(COCO_CLASSES), weights=str(path), in_channels=1).eval()
    assert grey.in_channels == 1 and grey.stem_conv().in_channels == 1
    assert grey.modalities == ["lwir"]
    image = torch.rand(1, 1, SIZE, SIZE)
    torch.testing.assert_close(grey.model(image)[0], reference(image.repeat(1, 3, 1, 1))[0],
                               rtol=1e-4, atol=1e-4)
    # and through the contract: same detections on the grey image
    grey_out = grey([image[0]])[0]
    rgb = yolo.import_checkpoint(path)
    rgb_out = rgb([image[0].repeat(3, 1, 1)])[0]
    # the best detection is never suppressed, so both give it (lower ones may swap places
    # through float rounding in NMS ties)
    best, rgb_best = grey_out["scores"].argmax(), rgb_out["scores"].argmax()
    torch.testing.assert_close(grey_out["scores"][best], rgb_out["scores"][rgb_best], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grey_out["boxes"][best], rgb_out["boxes"][rgb_best], rtol=1e-4, atol=1e-3)
    assert grey_out["labels"][best] == rgb_out["labels"][rgb_best]


def test_stem_zero_on_rgbt_equals_rgb(coco_checkpoint):
    path, reference = coco_checkpoint
    detector = yolo.import_checkpoint(path)
    adapt_stem(detector, 4, "zero")
    assert detector.in_channels == 4 and detector.build_args()  # rebuildable
    rgb, thermal = torch.rand(1, 3, SIZE, SIZE), torch.rand(1, 1, SIZE, SIZE)
    torch.testing.assert_close(detector.model(torch.cat([rgb, thermal], 1))[0], reference(rgb)[0],
                               rtol=1e-5, atol=1e-5)
    rebuilt = build_detector("yolov8n", detector.class_names, in_channels=4, **detector.build_args())
    rebuilt.load_state_dict(detector.state_dict())
    _check_train_and_eval_channels(rebuilt, 4)


def _check_train_and_eval_channels(detector, channels):
    detector.train()
    losses = detector([torch.rand(channels, SIZE, SIZE)] * 2, _targets())
    assert torch.isfinite(sum(losses.values()))
    detector.eval()
    assert len(detector([torch.rand(channels, 40, 50)])) == 1


def test_backbone_weights_are_refused():
    with pytest.raises(ConfigError, match="backbone_weights"):
        build_detector("yolov8n", ["a"], backbone_weights="mobilenet_v2_imagenet.pth")


def test_registry_names_resolve_through_detector_weights(coco_checkpoint, tmp_path, monkeypatch):
    path, reference = coco_checkpoint
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "yolov8n.pt").write_bytes(path.read_bytes())  # the registry's file name
    monkeypatch.setenv("DETECTOR_WEIGHTS", str(folder))
    monkeypatch.setenv("DETECTOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DETECTOR_OFFLINE", "1")
    detector = build_detector("yolov8n", list(COCO_CLASSES), weights="yolov8n").eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    torch.testing.assert_close(detector.model(x)[0], reference(x)[0], rtol=0, atol=0)
    # an arch name alone loads its default weights, with the registry's COCO names
    by_name = load_model("yolov8n")
    assert by_name.class_names == list(COCO_CLASSES)
    torch.testing.assert_close(by_name.model(x)[0], reference(x)[0], rtol=0, atol=0)


def test_fit_trains_rgbt_yolo_and_its_run_checkpoint_reloads(coco_checkpoint, tmp_path):
    """The engine trains a 4-channel (RGB + LWIR) model converted from the COCO checkpoint, with
    a frozen stem, EMA and evaluation, and `load_model` rebuilds it from last.pt."""
    from detector.data.dataset import DetectionDataset
    from detector.data.readers import read_dataset
    from detector.data.synthetic import make_synthetic_dataset
    from detector.data.transforms import build_transforms
    from detector.train.engine import fit

    path, _ = coco_checkpoint
    card = make_synthetic_dataset(tmp_path / "data", num_train=4, num_val=2, size=(96, 80))
    train, val = read_dataset(card, split="train"), read_dataset(card, split="val")
    detector = build_detector("yolov8n", train.class_names, weights=str(path), in_channels=4,
                              image_size=SIZE)
    stem_before = detector.stem_conv().weight.detach().clone()
    dataset = DetectionDataset(train, build_transforms([], image_size=SIZE), channels=["rgb", "lwir"])
    result = fit(detector, dataset, DetectionDataset(val, channels=["rgb", "lwir"]),
                 out_dir=tmp_path / "run", stages=[{"epochs": 1, "train": ["head", "neck", "backbone"]}],
                 batch_size=2, ema=True, show_progress=False, device="cpu", eval_backend="pycocotools")
    assert result["epochs"] == 1 and result["history"][0]["AP"] is not None
    assert torch.equal(detector.stem_conv().weight, stem_before)  # frozen part untouched
    reloaded = load_model(tmp_path / "run" / "last.pt")
    assert isinstance(reloaded, yolo.YOLODetector) and reloaded.in_channels == 4
    assert reloaded.class_names == train.class_names and reloaded.image_size == SIZE
    image = torch.rand(4, 80, 96)
    assert len(reloaded([image])) == 1
