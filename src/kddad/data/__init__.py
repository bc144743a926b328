"""The data layer: the KDD record layout, download, parsing and splitting (no torch)."""
