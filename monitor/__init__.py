"""finsent monitor: real-time financial sentiment monitoring daemon."""

__version__ = "0.1.0"
