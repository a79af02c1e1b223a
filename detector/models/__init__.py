"""Detector families behind one contract (see `detector.models.detector.Detector`)."""

from detector.models.registry import build_detector, list_models, register_model

__all__ = ["build_detector", "list_models", "register_model"]
