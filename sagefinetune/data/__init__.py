"""Data: Dataset, its sources (and the maintained copies of withdrawn Hub names), labels, splits, preparation and the
token cache, the bundled examples."""
