"""`detector advise`: measure a data set (size, class overlap, channels, BatchNorm-statistics
domain gap per layer) against pretrained models and recommend how to transfer them, as a report
and a ready training recipe. See advisor.py for the flow."""

from detector.advisor.advisor import Advice, ModelAdvice, advise

__all__ = ["Advice", "ModelAdvice", "advise"]
