"""FedPM as a Flower app built from ratedist.flower (see README.md)."""
