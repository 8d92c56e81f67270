"""The training loop for a pack of K runs that share a dataset, model shape and schedule.

K = 1 is an ordinary run. With K > 1 the members train side by side in one grouped ResNet (models/resnet.py):
each member has its own initial weights, loss, labels, data order and augmentation, and nothing of one member
reaches another, so a packed run's metrics equal the same run trained alone up to float rounding.

Metrics accumulate on the device; the host reads them once per epoch, never inside a step.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm

import models
import tce
from data import RunData, one_line
from experiments import evaluation, interrupt, precision
from experiments.config import loss_params
from models import pack_state_dicts, unpack_state_dict

log = logging.getLogger("tce")
T = TypeVar("T")


@dataclass
class Member:
    """One run of the pack: its resolved config, data and where training stands."""

    cfg: DictConfig
    data: RunData
    model_state: dict[str, torch.Tensor]
    momentum: dict[str, torch.Tensor] | None = None  # SGD momentum buffers by parameter name, once it has stepped
    loss_fn: torch.nn.Module = field(init=False)

    def __post_init__(self):
        self.loss_fn = tce.build_loss(self.cfg.loss.name, **loss_params(self.cfg.loss))


def initial_model_state(cfg: DictConfig, in_channels: int, num_classes: int) -> dict[str, torch.Tensor]:
    """The run's freshly initialised weights, drawn on the CPU from its seed, so every device starts alike."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return models.build(cfg, in_channels, num_classes).state_dict()


def lr_at(epoch: int, cfg: DictConfig) -> float:
    """The lr of 1-based `epoch`: divided by 1/lr_gamma after each milestone (128 and 192 of 256 epochs)."""
    passed = sum(epoch > round(m * cfg.epochs) for m in cfg.optim.lr_milestones)
    return float(f"{cfg.optim.lr * cfg.optim.lr_gamma**passed:.12g}")  # 0.001, not 0.0010000000000000002


class Forward:
    """The model's forward pass: compiled when asked for and possible, else eager.

    torch.compile works lazily, so a failure to compile (no C compiler for Triton, an unsupported op) shows in the
    first step or evaluation; `fall_back` then switches to eager for good, with one warning line, and the caller
    redoes the work. Any other error (out of memory, a bug) is the run's own and fails it. Shapes are static
    (dynamic=False): a sweep process compiles one graph per batch shape, i.e. the full and the last partial
    training batch and one evaluation batch (evaluation pads its last batch, see PackTrainer).
    """

    def __init__(self, model: torch.nn.Module, compile: bool):
        self.model = model
        self.compiled = torch.compile(model, dynamic=False) if compile else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model if self.compiled is None else self.compiled)(x)

    def fall_back(self, error: Exception) -> bool:
        """Whether `error` is torch.compile's failure to compile: if so, this runs eager from now on."""
        if self.compiled is None or not isinstance(error, compile_errors()):
            return False
        log.warning(f"torch.compile failed, running eager instead: {one_line(error)}")
        self.compiled = None
        return True


def compile_errors() -> tuple[type[Exception], ...]:
    """What torch.compile raises when it cannot compile (torch 2.14): TorchDynamoException covers dynamo's
    BackendCompilerFailed (inductor's InductorError among them), InternalTorchDynamoError, Unsupported,
    TorchRuntimeError and TritonMissing; inductor's own errors and Triton's may also surface unwrapped.
    Imported when an error arrives: torch._dynamo takes seconds to import, and an eager run never needs it."""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor import exc as inductor

    errors = (TorchDynamoException, inductor.OperatorIssue, inductor.SubgraphLoweringException,
              inductor.InvalidCxxCompiler, inductor.CppCompileError, inductor.CppWrapperCodegenError)
    try:
        from triton.errors import TritonError
    except ImportError:  # no Triton (a CPU-only install): its errors cannot occur
        return errors
    return (*errors, TritonError)


# One model per shape and device for the whole process, so that torch.compile's work is done once per sweep:
# each run loads its own weights into it.
_MODELS: dict[tuple, tuple[torch.nn.Module, Forward]] = {}


def _model_for(cfg: DictConfig, members: int, in_channels: int, num_classes: int, device: torch.device):
    key = (cfg.model.depth, members, in_channels, num_classes, str(device), cfg.channels_last, cfg.compile)
    if key not in _MODELS:
        model = models.build(cfg, in_channels, num_classes, members).to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        _MODELS[key] = (model, Forward(model, cfg.compile))
    return _MODELS[key]


class PackTrainer:
    def __init__(self, members: list[Member], device: torch.device):
        self.members = members
        self.k = len(members)
        cfg = self.cfg = members[0].cfg
        data = members[0].data
        self.num_classes = data.num_classes
        self.device = device
        self.model, self.forward = _model_for(cfg, self.k, data.in_channels, data.num_classes, device)
        self.model.load_state_dict(pack_state_dicts([m.model_state for m in members]))
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            nesterov=cfg.optim.nesterov,
            weight_decay=cfg.optim.weight_decay,
            **({"fused": True} if device.type == "cuda" else {"foreach": True}),
        )
        if members[0].momentum is not None:
            buffers = pack_state_dicts([m.momentum for m in members])
            for name, p in self.model.named_parameters():
                self.optimizer.state[p]["momentum_buffer"] = buffers[name].to(device)
        self.autocast = precision.autocast(cfg.precision, device)

    def _input(self, xs: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(xs, dim=1) if self.k > 1 else xs[0]
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            out = self.forward(x)
        # Losses see float32 logits, or float64 ones from a float64 model (tests compare packs in float64).
        return out.to(torch.promote_types(out.dtype, torch.float32)).view(x.shape[0], self.k, self.num_classes)

    @property
    def compiled(self) -> bool:
        return self.forward.compiled is not None

    def _guarded(self, work: Callable[[], T]) -> T:
        """work() in the run's arithmetic; once more, eagerly, if it failed because torch.compile could not compile."""
        with precision.arithmetic(self.cfg.precision):
            try:
                return work()
            except Exception as error:
                if not self.forward.fall_back(error):
                    raise
                return work()

    def step(self, pairs: tuple[tuple[torch.Tensor, torch.Tensor], ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on one (images, labels) batch per member; returns per-member loss and correct count."""
        return self._guarded(lambda: self._step(pairs))

    def _step(self, pairs: tuple[tuple[torch.Tensor, torch.Tensor], ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._input([p[0] for p in pairs])
        y = torch.stack([p[1] for p in pairs], dim=1)
        logits = self._logits(x)
        losses = torch.stack([m.loss_fn(logits[:, k], y[:, k]) for k, m in enumerate(self.members)])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach(), (logits.detach().argmax(-1) == y).sum(0)

    def train_epoch(self, epoch: int) -> dict[str, list[float]]:
        """One epoch over every member's own batches; returns per-member train_loss and train_acc."""
        lr = lr_at(epoch, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss_sum = torch.zeros(self.k, device=self.device)
        correct = torch.zeros(self.k, device=self.device, dtype=torch.int64)
        seen = 0
        loaders = [m.data.loader for m in self.members]
        batches = tqdm(
            zip(*loaders, strict=True), total=len(loaders[0]), desc=f"epoch {epoch}", leave=False,
            disable=not self.cfg.progress, dynamic_ncols=True,
        )
        for pairs in batches:
            interrupt.check()
            losses, hits = self.step(pairs)
            loss_sum += losses * len(pairs[0][1])
            correct += hits
            seen += len(pairs[0][1])
        return {
            "lr": [lr] * self.k,
            "train_loss": (loss_sum / seen).tolist(),
            "train_acc": (100.0 * correct / seen).tolist(),
        }

    @torch.no_grad()
    def evaluate(self, name: str) -> list[dict]:
        """Each member's metrics on its own copy of eval set `name` (experiments/evaluation.py); every column
        of the set None where the members have no such set (no holdout)."""
        if name not in self.members[0].data.eval_sets:
            return [dict.fromkeys(evaluation.COLUMNS[name]) for _ in range(self.k)]
        return self._guarded(lambda: self._evaluate(name))

    def _evaluate(self, name: str) -> list[dict]:
        self.model.eval()
        totals, seen, size = None, 0, self.cfg.eval_batch_size
        sets = [m.data.eval_sets[name].batches(size) for m in self.members]
        for batches in zip(*sets, strict=True):
            interrupt.check()
            x, y, noisy = zip(*batches, strict=True)
            x = self._input(list(x))
            count = x.shape[0]
            if self.compiled and count < size:
                # One shape for every evaluation batch, so the compiled model is not recompiled for the last one;
                # in eval mode each image's logits are its own, so the padding changes none.
                x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, size - count))
            logits = self._logits(x)[:count]
            noisy = None if noisy[0] is None else torch.stack(noisy, dim=1)
            totals = evaluation.add(totals, evaluation.batch_sums(logits, torch.stack(y, dim=1), noisy))
            seen += count
        return evaluation.epoch_metrics(name, totals, seen)

    def run_epoch(self, epoch: int) -> list[dict]:
        """Train and evaluate one epoch; one row per member: metrics.csv's columns, and the calibration bins."""
        start = time.perf_counter()
        trained = self.train_epoch(epoch)
        rows = [{"epoch": epoch, **{c: v[k] for c, v in trained.items()}} for k in range(self.k)]
        for name in evaluation.COLUMNS:
            for row, measured in zip(rows, self.evaluate(name), strict=True):
                row.update(measured)
        seconds = round(time.perf_counter() - start, 3)
        return [{**row, "seconds": seconds} for row in rows]

    def member_states(self) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """Each member's weights and momentum buffers, on the CPU, as the run trained alone would hold them."""
        model = {n: t.cpu() for n, t in self.model.state_dict().items()}
        buffers = {n: self.optimizer.state[p]["momentum_buffer"].cpu() for n, p in self.model.named_parameters()}
        return list(zip(unpack_state_dict(model, self.k), unpack_state_dict(buffers, self.k), strict=True))
