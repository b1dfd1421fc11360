"""Data: Dataset, its sources, labels, splits, preparation and the token cache, the bundled examples."""
