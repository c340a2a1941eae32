"""ratedist.compressors (being built)."""
