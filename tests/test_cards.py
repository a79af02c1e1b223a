"""Dataset cards (data/cards.py: parsing; data.readers.read_card: reading) and RGB+LWIR pairing
by file stem (data/readers/pairing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_readers import only, write_image

from detector.data.cards import load_card
from detector.data.readers import read_dataset
from detector.errors import DatasetError


def make_pairs(root: Path, rgb=("a", "b", "c"), lwir=("a", "b", "c")):
    for stem in rgb:
        write_image(root / "visible" / "train" / f"{stem}.jpg")
    for stem in lwir:
        write_image(root / "infrared" / "train" / f"{stem}.jpg")
    (root / "labels" / "train").mkdir(parents=True)
    for stem in rgb:
        (root / "labels" / "train" / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    card = root / "pairs.yaml"
    card.write_text(f"format: yolo\nroot: {root}\nclasses: [person]\n"
                    "modalities: {rgb: visible, lwir: infrared}\n"
                    "splits:\n  train: {images: train, labels: labels/train}\n")
    return card


def test_pairs_by_stem(tmp_path):
    records = read_dataset(make_pairs(tmp_path), split="train")
    assert records.modalities == ["rgb", "lwir"] and len(records) == 3
    for record in records.images:
        assert record.paths["rgb"].stem == record.paths["lwir"].stem
        assert record.paths["lwir"].parent == tmp_path / "infrared" / "train"


def test_missing_ir_partner_is_reported_and_dropped(tmp_path):
    records = read_dataset(make_pairs(tmp_path, lwir=("a", "c")), split="train")
    problem = only(records, "missing_pair")
    assert problem.file == str(tmp_path / "infrared" / "train") and "dropped: b" in problem.message
    assert [r.stem for r in records.images] == ["a", "c"]


def test_card_picks_a_modality_subset(tmp_path):
    records = read_dataset(make_pairs(tmp_path), split="train", modalities=["lwir"])
    assert records.modalities == ["lwir"]
    assert records.images[0].paths["lwir"].parent == tmp_path / "infrared" / "train"


def test_card_unknown_key_names_the_nearest(tmp_path):
    card = tmp_path / "bad.yaml"
    card.write_text("format: yolo\nroot: x\nsplits: {train: {images: i}}\nignore_class: [a]\n")
    with pytest.raises(DatasetError, match=r"bad.yaml: unknown key 'ignore_class'; did you mean "
                       r"'ignore_classes'\?"):
        load_card(card)
    card.write_text("format: yolo\nroot: x\nsplits: {train: {image: i}}\n")
    with pytest.raises(DatasetError, match="split 'train': unknown key 'image'; did you mean"):
        load_card(card)


def test_paths_and_cards_dispatch_through_one_readers_table(tmp_path, monkeypatch):
    from detector.data import readers

    card = make_pairs(tmp_path)
    calls = []
    read_yolo = readers.READERS["yolo"]
    monkeypatch.setitem(readers.READERS, "yolo",
                        lambda reading: calls.append(reading) or read_yolo(reading))
    by_card = read_dataset(card, split="train", modalities=["rgb"])
    by_path = read_dataset(tmp_path, images=tmp_path / "visible" / "train",
                           labels=tmp_path / "labels" / "train")
    assert len(calls) == 2 and len(by_card) == len(by_path) == 3
    assert calls[0].classes == ["person"] and calls[1].classes is None
    assert readers.FORMATS == ("coco", "yolo", "voc")


def test_card_with_an_unknown_format_names_the_card(tmp_path):
    card = tmp_path / "odd.yaml"
    card.write_text(f"format: kitti\nroot: {tmp_path}\nsplits: {{train: {{images: i}}}}\n")
    with pytest.raises(DatasetError, match=r"odd.yaml: format 'kitti' is not one of coco, yolo, voc"):
        read_dataset(card, split="train")


def test_card_root_is_relative_to_detector_data(tmp_path, monkeypatch):
    make_pairs(tmp_path / "data" / "mine")
    card = tmp_path / "mine.yaml"
    card.write_text("format: yolo\nroot: mine\nclasses: [person]\nmodalities: {rgb: visible}\n"
                    "splits:\n  train: {images: train, labels: labels/train}\n")
    monkeypatch.setenv("DETECTOR_DATA", str(tmp_path / "data"))
    assert len(read_dataset(card, split="train")) == 3
    monkeypatch.delenv("DETECTOR_DATA")
    with pytest.raises(DatasetError, match="DETECTOR_DATA"):
        read_dataset(card, split="train")
