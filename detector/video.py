"""Video files in and out, through OpenCV: frames as RGB arrays, an annotated copy.

    video = open_video("street.mp4")          # DatasetError naming the file if it cannot be read
    for index, frame in video.frames():       # [H,W,3] uint8, RGB order
        ...
    writer = open_writer("out/street.mp4", video.fps, video.width, video.height)

The copy keeps the source's container (by suffix) with a codec OpenCV always has: mp4v for
.mp4 / .mov / .m4v, MJPG for .avi and anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from detector.errors import DatasetError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
CODECS = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v"}
DEFAULT_FPS = 30.0  # when the container does not say


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Video:
    path: Path
    capture: cv2.VideoCapture
    fps: float
    width: int
    height: int
    frame_count: int | None  # what the container says; None when it does not

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index, [H,W,3] uint8 RGB) for every frame, then the capture is released."""
        index = 0
        try:
            while True:
                ok, frame = self.capture.read()
                if not ok:
                    return
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            self.capture.release()


def open_video(path: str | Path) -> Video:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such video file")
    # FFmpeg would print its own diagnosis ("moov atom not found") beside the one line below;
    # a user's own OPENCV_FFMPEG_LOGLEVEL is kept.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(f"{path}: OpenCV cannot open this video (corrupt, or a codec it lacks)")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width <= 0 or height <= 0:
        capture.release()
        raise DatasetError(f"{path}: the video has no frames OpenCV can decode")
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return Video(path, capture, fps if fps and fps > 0 else DEFAULT_FPS, width, height,
                 count if count > 0 else None)


def open_writer(path: str | Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    """A VideoWriter for BGR uint8 frames of width x height; DatasetError if OpenCV refuses."""
    path = Path(path)
    codec = CODECS.get(path.suffix.lower(), "MJPG")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise DatasetError(f"{path}: OpenCV cannot write a {codec} video here")
    return writer
