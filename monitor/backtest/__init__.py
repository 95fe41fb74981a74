"""Backtests: replay labelled history, score alerts against incidents, sweep thresholds, report."""

from monitor.backtest.command import backtest_command

__all__ = ["backtest_command"]
