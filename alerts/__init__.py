"""Alerting: detectors, alert lifecycle, evidence, sinks and the durable outbox."""
