"""Synthetic recordings with known over-splits, and scoring against that truth."""
