"""Framework adapters for the ``loader`` engine (the engine itself never imports them)."""
