"""The engine: the app that wires the parts, the pipeline (parse -> link -> batch -> classify -> windows
-> commit), the micro-batcher, the event-time watermark and ticker enrichment."""
