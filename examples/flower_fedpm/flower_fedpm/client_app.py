"""ClientApp: local FedPM training; ratedist's mod replaces θ_k by the entropy-coded mask payload."""

from ratedist.flower import client_app

from .task import local_update

app = client_app(local_update, "fedpm", pass_context=True)
