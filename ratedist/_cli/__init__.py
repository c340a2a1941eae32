"""One module per CLI verb; see :mod:`ratedist.cli`."""
