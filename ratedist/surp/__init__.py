"""ratedist.surp (being built)."""
