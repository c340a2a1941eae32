"""ratedist.fedpm (being built)."""
