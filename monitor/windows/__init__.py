"""Event-time window aggregation: pure bucket math plus memory and Redis stores."""
