"""The benchmarks reuse the tiny random two-head model of the classifier tests."""

from tests.unit.monitor.classify.conftest import tiny_model_dir

__all__ = ["tiny_model_dir"]
