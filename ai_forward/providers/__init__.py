"""Providers: one module per provider behind `base.Provider`, picked by name in `registry.py`."""
