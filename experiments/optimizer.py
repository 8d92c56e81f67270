"""A run's optimizer and the lr of each of its epochs (optim.*): SGD, the paper's, or Adam or AdamW, built by
torch over a pack's stacked parameters, and their state by parameter name for a checkpoint.

Every optimizer here updates each parameter elementwise (SGD's momentum, Adam's moments, L2 and decoupled weight
decay alike), so that a pack's one optimizer over K members' stacked parameters makes each member's own step.
"""

import math

import torch
from omegaconf import DictConfig

# A state entry's name in a checkpoint: the parameter's name for SGD's momentum buffer (as checkpoints have always
# named it), "<entry>:<parameter>" for the others (Adam's exp_avg, exp_avg_sq and step).
_MOMENTUM = "momentum_buffer"


def implementation(device: torch.device) -> dict[str, bool]:
    """The optimizer's implementation on `device`: fused on CUDA (one kernel for all parameters; it needs each state
    tensor in its parameter's strides), foreach elsewhere."""
    return {"fused": True} if device.type == "cuda" else {"foreach": True}


def build(parameters: list[torch.nn.Parameter], cfg: DictConfig, device: torch.device) -> torch.optim.Optimizer:
    """optim.name's torch optimizer: SGD with momentum, Nesterov and L2 weight decay; Adam with L2 weight decay
    (added to the gradient); AdamW with decoupled weight decay (the weights times 1 - lr weight_decay)."""
    optim = cfg.optim
    if optim.name == "sgd":
        return torch.optim.SGD(parameters, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov,
                               weight_decay=optim.weight_decay, **implementation(device))
    adam = torch.optim.Adam if optim.name == "adam" else torch.optim.AdamW
    return adam(parameters, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, weight_decay=optim.weight_decay,
                **implementation(device))


def state_of(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The optimizer's state by name (empty before its first step)."""
    return {(name if entry == _MOMENTUM else f"{entry}:{name}"): t
            for name, p in model.named_parameters() for entry, t in optimizer.state[p].items()}


def load_state(optimizer: torch.optim.Optimizer, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Sets the optimizer's state from state_of's names: each tensor in its parameter's strides, which fused
    optimizers require; Adam's step count on the parameter's device where fused, on the CPU otherwise, as torch
    places it."""
    parameters = dict(model.named_parameters())
    fused = optimizer.defaults.get("fused")
    for key, t in state.items():
        entry, _, name = key.rpartition(":") if ":" in key else (_MOMENTUM, "", key)
        p = parameters[name]
        if entry == "step":
            optimizer.state[p][entry] = t.to(p.device if fused else "cpu", torch.float32, copy=True)
        else:
            optimizer.state[p][entry] = torch.empty_like(p).copy_(t)


def lr_at(epoch: int, cfg: DictConfig) -> float:
    """The lr of 1-based `epoch`, as torch's schedulers give it when stepped after each epoch. A warm-up of
    w = warmup_epochs epochs trains epoch e <= w at lr e / (w + 1) (LinearLR(start_factor=1 / (w + 1),
    total_iters=w)); then the schedule runs as it would over a run of epochs - w epochs (SequentialLR with
    milestones=[w]): epoch w + e at the schedule's lr of its epoch e. Step: divided by 1/lr_gamma after each
    milestone (128 and 192 of 256 epochs). Cosine: lr_min + (lr - lr_min) (1 + cos(pi (e - 1) / (epochs - w))) / 2,
    the first epoch at lr, the last just above lr_min; cosine_restarts: the same over each cycle of restart_epochs,
    starting again at lr; exponential: lr lr_gamma^(e - 1)."""
    optim, warmup = cfg.optim, cfg.optim.warmup_epochs
    e = epoch - warmup  # the schedule's own epoch
    if e <= 0:
        lr = optim.lr * epoch / (warmup + 1)
    elif optim.schedule in ("cosine", "cosine_restarts"):
        period = cfg.epochs - warmup if optim.schedule == "cosine" else optim.restart_epochs
        lr = optim.lr_min + (optim.lr - optim.lr_min) * (1 + math.cos(math.pi * ((e - 1) % period) / period)) / 2
    elif optim.schedule == "exponential":
        lr = optim.lr * optim.lr_gamma ** (e - 1)
    else:
        lr = optim.lr * optim.lr_gamma ** sum(epoch > m for m in milestone_epochs(cfg))
    return float(f"{lr:.12g}")  # 0.001, not 0.0010000000000000002


def milestone_epochs(cfg: DictConfig) -> list[int]:
    """The epochs after which the step schedule multiplies the lr by lr_gamma: warmup_epochs + floor(m n) for each
    fraction m of lr_milestones, n = epochs - warmup_epochs the schedule's epochs, floor(m n) at least 1 (so that the
    schedule's first epoch trains at lr): 128 and 192 of 256, 1 and 2 of 3, 1 and 1 of 1. A fraction names epoch k
    for every m in [k / n, (k + 1) / n). The product is rounded to 9 decimals first: a fraction written as a float,
    0.3333333333333333 of 120 (ELR's 40) or 0.5333333333333333 of 150 (its 80), is a hair below its epoch."""
    warmup = cfg.optim.warmup_epochs
    return [warmup + max(1, math.floor(round(m * (cfg.epochs - warmup), 9))) for m in cfg.optim.lr_milestones]
