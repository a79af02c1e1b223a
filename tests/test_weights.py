"""Weights registry and resolve(): local folders, the cache, verified atomic downloads from a
local HTTP server on 127.0.0.1 serving a checkpoint the test writes."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
from pathlib import Path

import pytest
import torch
import yaml

import detector.weights as weights
from detector.cli import main
from detector.errors import WeightsError
from detector.models import build_detector, list_models


def _checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"layer.weight": torch.arange(6.0).reshape(2, 3)}, buffer)
    return buffer.getvalue()


BODY = _checkpoint_bytes()
DIGEST = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """/good.pt: the body; /short.pt: claims more bytes than it sends, then hangs up;
    anything else: 404."""

    requests: list[str] = []
    timeout = 10  # a stuck client cannot hold the server thread

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path == "/good.pt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/short.pt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY) * 2))
            self.end_headers()
            self.wfile.write(BODY[: len(BODY) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server():
    """Base URL of a server on 127.0.0.1 that stops after the test, or after 60 s at most."""
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    watchdog = threading.Timer(60, httpd.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def registry(tmp_path, monkeypatch, server):
    """A registry file with entries pointing at the test server; cache in tmp_path."""
    entries = [
        {"name": "good", "file": "good-model.pt", "url": f"{server}/good.pt", "sha256": DIGEST,
         "arch": "toy", "kind": "detector", "classes": "coco"},
        {"name": "good_prefix", "file": "prefix-model.pt", "url": f"{server}/good.pt",
         "sha256_prefix": DIGEST[:8], "arch": "toy", "kind": "detector", "classes": "coco"},
        {"name": "tampered", "file": "tampered.pt", "url": f"{server}/good.pt",
         "sha256": "0" * 64, "arch": "toy", "kind": "detector", "classes": "coco"},
        {"name": "tampered_prefix", "file": "tampered-prefix.pt", "url": f"{server}/good.pt",
         "sha256_prefix": "00000000", "arch": "toy", "kind": "detector", "classes": "coco"},
        {"name": "short", "file": "short.pt", "url": f"{server}/short.pt", "sha256": DIGEST,
         "arch": "toy", "kind": "detector", "classes": "coco"},
        {"name": "missing", "file": "missing.pt", "url": f"{server}/missing.pt", "sha256": DIGEST,
         "arch": "toy", "kind": "detector", "classes": "coco"},
        {"name": "unverified", "file": "unverified.pt", "url": f"{server}/good.pt",
         "sha256": None, "arch": "toy", "kind": "detector", "classes": "coco"},
        {"name": "local_only", "file": "local.pt", "url": None, "sha256": DIGEST,
         "arch": "toy", "kind": "backbone", "classes": "imagenet"},
    ]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(entries))
    monkeypatch.setattr(weights, "REGISTRY_FILE", path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("DETECTOR_CACHE", str(cache))
    monkeypatch.delenv("DETECTOR_WEIGHTS", raising=False)
    monkeypatch.delenv("DETECTOR_OFFLINE", raising=False)
    return cache


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_caches(registry):
    path = weights.resolve("good", progress=False)
    assert path == registry / "good-model.pt"
    assert path.read_bytes() == BODY
    assert torch.equal(torch.load(path, weights_only=True)["layer.weight"],
                       torch.arange(6.0).reshape(2, 3))
    assert _files(registry) == ["good-model.pt"]  # no temp file left beside it
    assert weights.resolve("good-model.pt", progress=False) == path  # by file name, from cache
    assert _Handler.requests == ["/good.pt"]  # the second resolve did not download


def test_download_with_a_sha256_prefix(registry):
    assert weights.resolve("good_prefix", progress=False).read_bytes() == BODY


@pytest.mark.parametrize("name", ["tampered", "tampered_prefix"])
def test_wrong_sha256_is_refused_and_nothing_is_kept(registry, name):
    with pytest.raises(WeightsError, match="sha256 .* does not (match|start with)"):
        weights.resolve(name, progress=False)
    assert _files(registry) == []


def test_interrupted_transfer_keeps_no_partial_file(registry):
    with pytest.raises(WeightsError, match="interrupted after"):
        weights.resolve("short", progress=False)
    assert _Handler.requests == ["/short.pt"]
    assert _files(registry) == []


def test_http_error_keeps_nothing(registry):
    with pytest.raises(WeightsError, match="HTTP 404"):
        weights.resolve("missing", progress=False)
    assert _files(registry) == []


def test_offline_error_names_the_file_and_the_folder(registry, monkeypatch):
    monkeypatch.setenv("DETECTOR_OFFLINE", "1")
    with pytest.raises(WeightsError) as error:
        weights.resolve("good", progress=False)
    message = str(error.value)
    assert "good-model.pt" in message and str(registry) in message
    assert "DETECTOR_OFFLINE" in message and "/good.pt" in message
    assert _Handler.requests == []


def test_unverifiable_download_says_so(registry, capsys):
    path = weights.resolve("unverified", progress=False)
    assert path.read_bytes() == BODY
    assert "cannot be verified" in capsys.readouterr().err


def test_not_downloadable_names_the_folder(registry):
    with pytest.raises(WeightsError, match=f"not downloadable; put local.pt in {registry}"):
        weights.resolve("local_only", progress=False)


def test_resolve_from_detector_weights_folders(registry, tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    (second / "good-model.pt").write_bytes(b"placed by hand")
    monkeypatch.setenv("DETECTOR_WEIGHTS", os.pathsep.join([str(first), str(second)]))
    assert weights.resolve("good", progress=False) == second / "good-model.pt"
    (first / "good-model.pt").write_bytes(b"first folder wins")
    assert weights.resolve("good", progress=False) == first / "good-model.pt"
    assert _Handler.requests == [] and _files(registry) == []


def test_existing_path_and_unknown_name(registry, tmp_path):
    path = tmp_path / "mine.pt"
    path.write_bytes(BODY)
    assert weights.resolve(str(path)) == path
    with pytest.raises(WeightsError, match="unknown weights 'nope'; valid names: good, good_prefix"):
        weights.resolve("nope")


def test_weights_cli_list_and_fetch(registry, capsys):
    assert main(["weights", "fetch", "good"]) == 0
    assert str(registry / "good-model.pt") in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert str(registry / "good-model.pt") in lines["good"]
    assert "not here" in lines["tampered"] and "(no url)" in lines["local_only"]
    assert main(["weights", "fetch", "nope"]) == 2


# --- the real registry --------------------------------------------------------------------------


def test_registry_entries_are_consistent():
    entries = weights.load_registry()
    models = set(list_models())
    for entry in entries.values():
        assert entry.kind in ("detector", "backbone")
        if entry.url is not None:
            assert entry.url.startswith("https://") and entry.url.endswith("/" + entry.file)
        if entry.sha256_prefix is not None:  # torchvision: the prefix is in the file name
            assert f"-{entry.sha256_prefix}." in entry.file
        if entry.sha256 is not None:
            assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        if entry.arch.startswith("fasterrcnn"):
            assert entry.arch in models
    for arch in list_models("rcnn"):
        if arch.endswith("_fpn") or arch.endswith("_fpn_v2"):
            assert weights.weights_class_names(weights.default_weights(arch))[0] == "person"
        else:
            assert weights.default_backbone_weights(arch) is not None
    assert entries["yolov5n"].sha256 == (
        "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3")


def test_broken_registry_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "registry.yaml"
    path.write_text("- name: x\n  file: x.pt\n  url: null\n  arch: a\n  kind: detector\n  colour: red\n")
    monkeypatch.setattr(weights, "REGISTRY_FILE", path)
    with pytest.raises(WeightsError, match=f"{path}: entry 1: expected the keys"):
        weights.list_weights()


@pytest.mark.shared_data
def test_shared_mobilenet_v2_backbone_resolves_verifies_and_loads(shared_weights, monkeypatch):
    monkeypatch.setenv("DETECTOR_WEIGHTS", str(shared_weights))
    path = weights.resolve("mobilenet_v2_imagenet")
    assert path == shared_weights / "mobilenet_v2_imagenet.pth"
    assert weights.sha256_of(path) == weights.get_entry("mobilenet_v2_imagenet").sha256
    detector = build_detector("fasterrcnn_mobilenet_v2", ["RBC", "WBC", "Platelets"],
                              backbone_weights="mobilenet_v2_imagenet", min_size=64, max_size=96)
    assert detector.norm == "frozen"
    state = torch.load(path, weights_only=True)
    body = detector.model.backbone.body.state_dict()
    loaded = 0
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(body[key.removeprefix("features.")], value), key
        loaded += 1
    assert loaded == len([k for k in body if not k.endswith("num_batches_tracked")])
