"""Datasets (registry in datasets.py) and attacks (registry in attacks/)."""
