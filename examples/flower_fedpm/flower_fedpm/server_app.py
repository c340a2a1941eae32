"""ServerApp: ratedist's FedPMStrategy (decode masks, Beta aggregation, broadcast scores)."""

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import ServerApp

from ratedist.flower import FedPMStrategy, aggregator_to_records

from .task import D, accuracy, initial_scores

app = ServerApp()


@app.main()
def main(grid, context) -> None:
    cfg = context.run_config
    seed = int(cfg["run-seed"])

    def report(server_round, strategy):
        r = strategy.reports[-1]
        acc = f"{accuracy(strategy.theta, seed, server_round):.3f}" if strategy.theta is not None else "n/a"
        print(f"round {server_round}: {len(r.aggregated)} clients aggregated, {r.n_skipped} skipped {r.skipped}, "
              f"{sum(r.bpp) / max(1, len(r.bpp)):.4f} bits per parameter measured, "
              f"accuracy {acc}", flush=True)

    strategy = FedPMStrategy(D, n_nodes=int(cfg["num-nodes"]), clients_per_round=int(cfg["clients-per-round"]),
                             run_seed=seed, on_round_end=report)
    strategy.start(grid=grid, initial_arrays=strategy.scores_record(initial_scores(seed)),
                   num_rounds=int(cfg["num-server-rounds"]), train_config=ConfigRecord())
    arrays, config = aggregator_to_records(strategy.aggregator)  # a checkpoint of the server's state
    context.state["ratedist.beta.arrays"] = ArrayRecord(dict(arrays))
    context.state["ratedist.beta.config"] = config
