"""ratedist.pruning (being built)."""
