"""Novelty: near-duplicate stories (retweets, syndicated copies, "UPDATE n-" reissues) count once."""
