"""DWNP's in-process federated engine (``torch`` extra): a seeded, deterministic loop.

One round (docs/theory.md §8):

1. **weights** — the hypernetwork draws ``a⁰`` and every ``aⁿ`` (straight-through Gumbel–sigmoid, no
   gradient), each device trains a copy of the global weights for ``local_steps`` SGD steps under
   ``a⁰ ⊙ aⁿ``, and the server averages the copies (FedAvg, weighted by the devices' sample counts;
   BatchNorm statistics are averaged the same way);
2. **hypernetwork** — with the weights fixed, ``hn_steps`` Adam steps on
   ``(1/N) Σ_n L_n(W; a⁰ ⊙ aⁿ) + λ [R(T(a⁰), p_s T) + (1/N) Σ_n R(T(a⁰ ⊙ aⁿ), pⁿ_d T)]``, each ``L_n``
   on one mini-batch of device ``n``'s data.

Where the hypernetwork lives is not given by the seeds; here it is updated at the server from the
gradient of every device's loss with respect to its gates.  In one process that is plain autograd; in
a deployment each device would send ``∂L_n/∂(a⁰ ⊙ aⁿ)`` (one number per channel) and the server would
back-propagate it through the hypernetwork — the same gradient.

The Gumbel noise is scaled by ``1 - r / (noise_off * rounds)`` (and 0 after), so the last rounds train
the hypernetwork on the deterministic gates ``1[o >= 0]`` that the pruning uses, and its learning rate
decays (cosine, to a tenth) so the gates settle.  One channel of a convolution is worth 2–4 % of the
digits CNN's FLOPs, so the deterministic gates keep flipping around their targets; after the rounds
``polish_steps`` more hypernetwork steps (weights fixed) are taken in four stages, each restarted from the best
state so far: every head, then only the head of the finest-grained gated layer (the smallest FLOPs per
channel: ``fc1`` here, a fraction of a per cent each), then both again, each stage with a learning rate
decaying linearly from ``hn_lr`` to a tenth; of all hypernetworks visited on
deterministic gates the one whose gates are closest to their targets (smallest largest relative
deviation ``|T / (p T_total) - 1|``; a choice that uses no data) is kept.  After the rounds the network is pruned permanently by ``a⁰``,
fine-tuned by FedAvg for ``finetune_rounds`` rounds, and every device's sub-network (``a⁰ ⊙ aⁿ``,
sliced out of it) is fine-tuned on its own data for ``finetune_steps`` steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validation import check_int, check_nonnegative, check_positive
from ..errors import InvalidArgumentError, InvalidShapeError
from ..pruning.structured import conv_flops
from .gated_cnn import GatedCNN, prune_by_gates
from .gates import flops_gradient
from .torch_gates import GateHypernetwork, flops_torch, gumbel_sigmoid_st, regularizer_torch

__all__ = ["DWNPConfig", "DWNPResult", "train_dwnp", "fedavg_round", "finetune"]


@dataclass(frozen=True)
class DWNPConfig:
    """Options of :func:`train_dwnp` (targets are kept-FLOPs fractions of the dense network)."""

    server_target: float = 0.6
    device_targets: tuple = (0.5, 0.4, 0.35, 0.3)
    channels: tuple = (16, 32, 64)
    rounds: int = 40
    local_steps: int = 10
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    hn_steps: int = 10
    hn_lr: float = 0.05
    lam: float = 5.0
    tau: float = 1.0
    noise_off: float = 0.75
    emb_dim: int = 8
    hidden: int = 32
    finetune_rounds: int = 5
    finetune_steps: int = 50
    polish_steps: int = 500
    seed: int = 0

    def __post_init__(self):
        p = check_positive("server_target", self.server_target)
        if p > 1:
            raise InvalidArgumentError(f"`server_target` must lie in (0, 1], got {self.server_target!r}.")
        for i, q in enumerate(self.device_targets):
            q = check_positive(f"device_targets[{i}]", q)
            if q > p:
                raise InvalidArgumentError(
                    f"`device_targets`[{i}] = {q!r} exceeds `server_target` = {p!r}: a device network is a "
                    "sub-network of the server's (a⁰ ⊙ aⁿ); lower it or raise `server_target`.")
        if not self.device_targets:
            raise InvalidArgumentError("`device_targets` must give one kept-FLOPs target per device.")
        for name in ("rounds", "local_steps", "batch", "hn_steps", "emb_dim", "hidden", "finetune_steps"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("finetune_rounds", self.finetune_rounds, minimum=0)
        check_int("polish_steps", self.polish_steps, minimum=0)
        for name in ("lr", "hn_lr", "tau"):
            check_positive(name, getattr(self, name))
        for name in ("lam", "momentum"):
            check_nonnegative(name, getattr(self, name))
        if not 0 < self.noise_off <= 1:
            raise InvalidArgumentError(f"`noise_off` must lie in (0, 1] (fraction of rounds with noise), got {self.noise_off!r}.")


@dataclass
class DWNPResult:
    """What :func:`train_dwnp` returns.

    Attributes
    ----------
    server_net : GatedCNN
        The server network pruned by ``a⁰`` and fine-tuned.
    device_nets : list of GatedCNN
        Every device's sub-network (``a⁰ ⊙ aⁿ``), fine-tuned on its data.
    server_gates, device_gates : list of ndarray
        Binary gates on the dense network (``device_gates[n]`` is ``a⁰ ⊙ aⁿ``).
    flops_total, server_flops : float
        Dense FLOPs ``T_total`` and the pruned server network's FLOPs.
    device_flops : list of float
        FLOPs of every device's pruned sub-network.
    forced_open : int
        Channels opened because the hypernetwork closed a whole layer (0 when it never did).
    selected_deviation : float
        Largest relative FLOPs deviation ``|T / (p T_total) - 1|`` of the kept hypernetwork's gates
        (before any channel was forced open); ``nan`` when no deterministic step was taken.
    history : list of dict
        Per round: kept-FLOPs fractions of the deterministic gates, the hypernetwork's loss terms.
    """

    server_net: GatedCNN
    device_nets: list
    server_gates: list
    device_gates: list
    flops_total: float
    server_flops: float
    device_flops: list
    forced_open: int = 0
    selected_deviation: float = float("nan")
    history: list = field(default_factory=list)


def _check_devices(devices):
    devices = list(devices)
    if not devices:
        raise InvalidArgumentError("`devices` must hold one (X, y) pair per device.")
    for i, (X, y) in enumerate(devices):
        if X.shape[0] != y.shape[0] or X.shape[0] == 0:
            raise InvalidShapeError(f"`devices`[{i}] has {X.shape[0]} inputs and {y.shape[0]} labels; give equal, non-zero counts.")
    return devices


def _batch(X, y, size: int, gen: torch.Generator):
    idx = torch.randint(X.shape[0], (min(size, X.shape[0]),), generator=gen)
    return X[idx], y[idx]


def _average(states: Sequence[dict], weights: Sequence[float]) -> dict:
    out = {}
    for k, v in states[0].items():
        if v.dtype.is_floating_point:
            out[k] = sum(w * s[k] for w, s in zip(weights, states))
        else:  # BatchNorm's num_batches_tracked: the same count on every device
            out[k] = v.clone()
    return out


def fedavg_round(net: GatedCNN, devices: Sequence, *, steps: int, lr: float, batch: int, gen: torch.Generator,
                 momentum: float = 0.9, gates: Sequence | None = None) -> None:
    """One FedAvg round in place: every device trains a copy of ``net`` for ``steps`` SGD steps (under
    ``gates[n]`` when given, a list of three tensors per device), the server averages the copies
    weighted by sample counts."""
    sizes = np.array([d[0].shape[0] for d in devices], dtype=np.float64)
    w = (sizes / sizes.sum()).tolist()
    states = []
    for n, (X, y) in enumerate(devices):
        local = copy.deepcopy(net)
        local.train()
        opt = torch.optim.SGD(local.parameters(), lr=lr, momentum=momentum)
        g = None if gates is None else gates[n]
        for _ in range(steps):
            xb, yb = _batch(X, y, batch, gen)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(local(xb, g), yb).backward()
            opt.step()
        states.append(local.state_dict())
    net.load_state_dict(_average(states, w))


def finetune(net: GatedCNN, X, y, *, steps: int, lr: float, batch: int, gen: torch.Generator,
             momentum: float = 0.9) -> None:
    """``steps`` SGD steps of ``net`` on ``(X, y)`` in place (a device fine-tuning its sub-network)."""
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    for _ in range(steps):
        xb, yb = _batch(X, y, batch, gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()
    net.eval()


def _deterministic(hn: GateHypernetwork, n: int) -> list[np.ndarray]:
    with torch.no_grad():
        return [(o >= 0).double().numpy() for o in hn(n)]


def train_dwnp(devices: Sequence, config: DWNPConfig | None = None, *,
               on_round: Callable[[dict], None] | None = None) -> DWNPResult:
    """Train DWNP on ``devices`` in one process (seeded, deterministic with deterministic torch kernels).

    Parameters
    ----------
    devices : sequence of (X, y)
        Every device's training data: float tensors (n, 1, 8, 8) or (n, 64) and int64 labels.
    config : DWNPConfig, optional
        ``len(config.device_targets)`` must equal the number of devices.
    on_round : callable, optional
        Called with each round's history entry (progress reporting).

    Returns
    -------
    DWNPResult
    """
    cfg = DWNPConfig() if config is None else config
    devices = _check_devices(devices)
    N = len(devices)
    if len(cfg.device_targets) != N:
        raise InvalidShapeError(f"`config.device_targets` has {len(cfg.device_targets)} targets for {N} devices; give one per device.")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = GatedCNN(cfg.channels)
    hn = GateHypernetwork(N, cfg.channels, emb_dim=cfg.emb_dim, hidden=cfg.hidden)
    layers = net.layers()
    T = conv_flops(layers)
    ones = torch.ones(net.n_classes)
    hn_opt = torch.optim.Adam(hn.parameters(), lr=cfg.hn_lr)
    total_hn_steps = cfg.rounds * cfg.hn_steps
    sched = torch.optim.lr_scheduler.LambdaLR(hn_opt, lambda k: 0.1 + 0.45 * (1 + math.cos(math.pi * min(k, total_hn_steps) / total_hn_steps)))

    def sample(n: int, s: float):
        return [gumbel_sigmoid_st(o, tau=cfg.tau, noise_scale=s, generator=gen)[0] for o in hn(n)]

    def flops(gs):
        return flops_torch(layers, list(gs) + [ones])

    def hn_step(s: float, opt=None) -> dict:
        """One hypernetwork step with the weights fixed; returns the loss terms."""
        for p in net.parameters():
            p.requires_grad_(False)
        net.train()
        hn_opt.zero_grad()
        a0 = sample(0, s)
        reg_s = regularizer_torch(flops(a0), cfg.server_target * T)
        data_loss = reg_d = 0.0
        for n, (X, y) in enumerate(devices):
            g = [x * y_ for x, y_ in zip(a0, sample(n + 1, s))]
            xb, yb = _batch(X, y, cfg.batch, gen)
            data_loss = data_loss + torch.nn.functional.cross_entropy(net(xb, g), yb) / N
            reg_d = reg_d + regularizer_torch(flops(g), cfg.device_targets[n] * T) / N
        (data_loss + cfg.lam * (reg_s + reg_d)).backward()
        if opt is None:
            hn_opt.step()
            sched.step()
        else:
            opt.step()
        for p in net.parameters():
            p.requires_grad_(True)
        return {"data_loss": float(data_loss.detach()), "reg_server": float(reg_s.detach()),
                "reg_devices": float(reg_d.detach())}

    def kept() -> dict:
        d0 = _deterministic(hn, 0)
        one = [np.ones(net.n_classes)]
        return {"server_kept": conv_flops(layers, d0 + one) / T,
                "device_kept": [conv_flops(layers, [a * b for a, b in zip(d0, _deterministic(hn, n + 1))] + one) / T
                                for n in range(N)]}

    targets = np.array([cfg.server_target, *cfg.device_targets])
    best = {"dev": np.inf, "state": None}

    def consider() -> None:
        """Keep the hypernetwork whose deterministic gates are closest to their targets (no data used)."""
        k = kept()
        dev = float(np.max(np.abs(np.array([k["server_kept"], *k["device_kept"]]) / targets - 1.0)))
        if dev < best["dev"]:
            best["dev"], best["state"] = dev, copy.deepcopy(hn.state_dict())

    history = []
    for r in range(cfg.rounds):
        s = max(0.0, 1.0 - r / (cfg.noise_off * cfg.rounds))
        # 1. weights: FedAvg under a⁰ ⊙ aⁿ (gates drawn once per round, no gradient to the hypernetwork)
        with torch.no_grad():
            a0 = sample(0, s)
            gates = [[x * y for x, y in zip(a0, sample(n + 1, s))] for n in range(N)]
        fedavg_round(net, devices, steps=cfg.local_steps, lr=cfg.lr, batch=cfg.batch, gen=gen,
                     momentum=cfg.momentum, gates=gates)
        # 2. hypernetwork: weights fixed
        for _ in range(cfg.hn_steps):
            terms = hn_step(s)
            if s == 0.0:
                consider()
        entry = {"round": r + 1, "noise_scale": s, **terms, **kept()}
        history.append(entry)
        if on_round is not None:
            on_round(entry)
    # polishing: only the head of the finest-grained gated layer (smallest FLOPs per channel) moves, so
    # each flip changes T by a fraction of a per cent (a convolution channel of the digits CNN is 2-4 %)
    per_channel = [float(g.mean()) for g in flops_gradient(layers)[:len(cfg.channels)]]
    fine = int(np.argmin(per_channel))
    # four stages: every head (coarse and fine flips together), then, from the best state so far, the
    # fine head alone, and the pair once more; learning rate decaying linearly to a tenth in each
    quarter = cfg.polish_steps // 4
    stages = [(hn.heads, quarter), (hn.heads[fine], quarter), (hn.heads, quarter),
              (hn.heads[fine], cfg.polish_steps - 3 * quarter)]
    for module, steps in stages:
        params = module.parameters()
        if best["state"] is not None:
            hn.load_state_dict(best["state"])
        polish_opt = torch.optim.Adam(params, lr=cfg.hn_lr)
        for k in range(steps):
            for group in polish_opt.param_groups:
                group["lr"] = cfg.hn_lr * (1.0 - 0.9 * k / max(1, steps - 1))
            hn_step(0.0, polish_opt)
            consider()
    if best["state"] is not None:
        hn.load_state_dict(best["state"])

    # permanent pruning by a⁰, then fine-tuning
    forced = 0
    with torch.no_grad():
        logits0 = [o.numpy() for o in hn(0)]
    a0 = _deterministic(hn, 0)
    for l, (g, o) in enumerate(zip(a0, logits0)):
        if g.sum() == 0:  # a whole layer closed would disconnect the network: open its strongest gate
            g[int(np.argmax(o))] = 1.0
            forced += 1
    dev_gates = []
    for n in range(N):
        with torch.no_grad():
            logits = [o.numpy() for o in hn(n + 1)]
        g = [a * b for a, b in zip(a0, _deterministic(hn, n + 1))]
        for l in range(len(g)):
            if g[l].sum() == 0:
                g[l][int(np.argmax(np.where(a0[l] > 0, logits[l], -np.inf)))] = 1.0
                forced += 1
        dev_gates.append(g)
    net.eval()
    server, keep = prune_by_gates(net, a0)
    for _ in range(cfg.finetune_rounds):
        fedavg_round(server, devices, steps=cfg.local_steps, lr=cfg.lr, batch=cfg.batch, gen=gen, momentum=cfg.momentum)
    server.eval()
    device_nets = []
    for n, (X, y) in enumerate(devices):
        sub, _ = prune_by_gates(server, [g[k] for g, k in zip(dev_gates[n], keep)])
        finetune(sub, X, y, steps=cfg.finetune_steps, lr=cfg.lr, batch=cfg.batch, gen=gen, momentum=cfg.momentum)
        device_nets.append(sub)
    return DWNPResult(server_net=server, device_nets=device_nets, server_gates=a0, device_gates=dev_gates,
                      flops_total=T, server_flops=conv_flops(server.layers()),
                      device_flops=[conv_flops(d.layers()) for d in device_nets], forced_open=forced,
                      selected_deviation=float(best["dev"]) if best["state"] is not None else float("nan"),
                      history=history)
