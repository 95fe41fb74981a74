"""Cluster mode: several daemons in one consumer group share per-partition marks (the cluster
watermark) in Redis, and one leader runs detection."""
