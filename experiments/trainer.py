"""The training loop for a pack of K runs that share a dataset, model shape and schedule.

K = 1 is an ordinary run. With K > 1 the members train side by side in one grouped ResNet (models/resnet.py):
each member has its own initial weights, loss, labels, data order and augmentation, and nothing of one member
reaches another, so a packed run's metrics equal the same run trained alone up to float rounding.

Nothing in a step is per member: one gather makes all members' batches (data.PackLoader), one forward and backward
train them, and each loss is computed once for all the members that use it (PackLoss). Metrics accumulate on the
device; the host reads them once per epoch, never inside a step.
"""

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from omegaconf import DictConfig
from tqdm import tqdm

import models
import tce
from data import RunData, one_line
from data.eval_set import PackEvalSet
from data.loader import PackLoader
from experiments import evaluation, interrupt, optimizer, placement, precision
from experiments.optimizer import lr_at
from experiments.pack_loss import PackLoss
from experiments.sample_dynamics import SampleDynamics
from experiments.schema import loss_params
from models import pack_state_dicts, unpack_state_dict
from tce import batched

log = logging.getLogger("tce")
T = TypeVar("T")
# Graphs torch.compile may make of the model's forward in one process. Each pack size, input shape, mode (train,
# eval) and precision takes one; a sweep process of one dataset needs 2 per pack size and precision (the partial
# last batch trains eagerly), so 64 leaves room for several datasets. Beyond it, torch.compile would run new
# shapes eagerly without a word (its default, with a limit of 8); here the run fails in one line instead.
RECOMPILE_LIMIT = 64


@dataclass
class Member:
    """One run of the pack: its resolved config, data and where training stands."""

    cfg: DictConfig
    data: RunData
    model_state: dict[str, torch.Tensor]
    # The optimizer's state by name (experiments.optimizer.state_of: SGD's momentum buffers, Adam's moments), once
    # it has stepped.
    momentum: dict[str, torch.Tensor] | None = None
    # What its loss needs that experiments/needs.py makes (a transition matrix, the memory as it stands), on the CPU.
    needs: dict[str, torch.Tensor] = field(default_factory=dict)
    # Its per-sample dynamics (experiments/sample_dynamics.py) as they stand, on the CPU, when it detects (detect).
    samples: dict[str, torch.Tensor] | None = None
    loss: tuple[str, dict] = field(init=False)  # the loss's name and its checked parameters

    def __post_init__(self):
        name = self.cfg.loss.name
        self.loss = (name, batched.check_params(name, loss_params(self.cfg.loss)))


def initial_model_state(cfg: DictConfig, in_channels: int, num_classes: int) -> dict[str, torch.Tensor]:
    """The run's freshly initialised weights, drawn on the CPU from its seed, so every device starts alike."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return models.build(cfg.model.name, cfg.model.depth, in_channels, num_classes).state_dict()


@torch.no_grad()
def clip_grad_norms(parameters: list[torch.nn.Parameter], members: int, max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ for each member of a pack on its own: member k's gradient (slice k of dim 0
    of every parameter, as models.pack_state_dicts stacks them) times min(1, max_norm / (||g_k|| + 1e-6)), its
    2-norm taken over all of its parameters. One norm per parameter for all members at once, no host sync."""
    grads = [p.grad.unflatten(0, (members, -1)) for p in parameters if p.grad is not None]  # views (K, ...)
    norms = torch.stack([torch.linalg.vector_norm(g, dim=tuple(range(1, g.dim()))) for g in grads])  # (params, K)
    scale = (max_norm / (torch.linalg.vector_norm(norms, dim=0) + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, [scale.view(-1, *[1] * (g.dim() - 1)) for g in grads])


class RecompileLimitHit(RuntimeError):
    """torch.compile would have run a new shape eagerly; the message is one line naming it."""


class Forward:
    """The model's forward pass: compiled when asked for and possible, else eager.

    torch.compile works lazily, so a failure to compile (no C compiler for Triton, an unsupported op) shows in the
    first step or evaluation; `fall_back` then switches to eager for good, with one warning line, and the caller
    redoes the work. Any other error (out of memory, a bug, RECOMPILE_LIMIT hit) is the run's own and fails it.
    Shapes are static (dynamic=False): a sweep process compiles one graph per pack size for the full training
    batch and one for evaluation (evaluation pads its last batch, see PackTrainer); the partial last training
    batch runs eagerly (`eager=True`), a graph for one step of an epoch not being worth its compile time.
    mode is torch.compile's: "default", or "reduce-overhead" (CUDA graphs, on CUDA only).
    """

    def __init__(self, model: torch.nn.Module, compile: bool, mode: str = "default"):
        self.model = model
        self.compiled = None
        self.mode = mode
        if compile:
            import torch._dynamo

            dynamo = torch._dynamo.config
            dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
            dynamo.fail_on_recompile_limit_hit = True
            options = {} if mode == "default" else {"mode": mode}
            self.compiled = torch.compile(model, dynamic=False, **options)

    def __call__(self, x: torch.Tensor, eager: bool = False) -> torch.Tensor:
        if self.compiled is None or eager:
            return self.model(x)
        if self.mode == "reduce-overhead":  # the graph's outputs are overwritten at its next replay: a new step
            torch.compiler.cudagraph_mark_step_begin()
        from torch._dynamo.exc import FailOnRecompileLimitHit

        try:
            return self.compiled(x)
        except FailOnRecompileLimitHit:
            raise RecompileLimitHit(
                f"torch.compile's limit of {torch._dynamo.config.recompile_limit} graphs of the model in one process "
                f"is hit by input {tuple(x.shape)} {x.dtype} in {'train' if self.model.training else 'eval'} mode "
                f"(this process compiled {compiled_graphs()}); train fewer pack sizes or datasets per process"
            ) from None

    def fall_back(self, error: Exception) -> bool:
        """Whether `error` is torch.compile's failure to compile: if so, this runs eager from now on."""
        if self.compiled is None or not isinstance(error, compile_errors()):
            return False
        log.warning(f"torch.compile failed, running eager instead: {one_line(error)}")
        self.compiled = None
        return True


def compiled_graphs() -> int:
    """The graphs torch.compile has made in this process (0 where it never ran: torch._dynamo is not imported)."""
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


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


def _model_for(cfg: DictConfig, members: int, in_channels: int, num_classes: int, device: torch.device,
               dtype: torch.dtype):
    key = (cfg.model.name, cfg.model.depth, members, in_channels, num_classes, str(device), dtype, cfg.channels_last,
           cfg.compile, cfg.compile_mode)
    if key not in _MODELS:
        model = models.build(cfg.model.name, cfg.model.depth, in_channels, num_classes, members).to(device, dtype)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        _MODELS[key] = (model, Forward(model, cfg.compile, cfg.compile_mode))
    return _MODELS[key]


class HostStates:
    """The members' weights and optimizer states, and their losses' states (PackLoss.loss_states), brought to the host
    in one flat copy per dtype (into pinned memory, without blocking, on CUDA); `members()` and `loss_states()` wait
    for the copy and split it, on whichever thread needs it."""

    def __init__(self, model: dict[str, torch.Tensor], momentum: dict[str, torch.Tensor], k: int,
                 loss_states: list[dict[str, torch.Tensor]] | None = None,
                 samples: dict[str, torch.Tensor] | None = None):
        self.k = k
        named = {**{("model", n): t for n, t in model.items()}, **{("momentum", n): t for n, t in momentum.items()},
                 **{(f"loss{j}", n): t for j, state in enumerate(loss_states or []) for n, t in state.items()},
                 **{("samples", n): t for n, t in (samples or {}).items()}}
        by_dtype: dict[torch.dtype, list[tuple[tuple[str, str], torch.Tensor]]] = {}
        for name, t in named.items():
            by_dtype.setdefault(t.dtype, []).append((name, t))
        self.layout, self.flat = [], {}
        device = next(iter(named.values())).device
        cuda = device.type == "cuda"
        for dtype, tensors in by_dtype.items():
            flat = torch.cat([t.reshape(-1) for _, t in tensors])
            if cuda:
                host = torch.empty(flat.shape, dtype=dtype, pin_memory=True)
                self.flat[dtype] = host.copy_(flat, non_blocking=True)
            else:
                self.flat[dtype] = flat  # torch.cat made the copy
            offset = 0
            for name, t in tensors:
                self.layout.append((name, dtype, offset, t.shape))
                offset += t.numel()
        self.event = torch.cuda.Event() if cuda else None
        if self.event is not None:  # on the stream of the tensors' device, which made the copies, not cuda:0's
            self.event.record(torch.cuda.current_stream(device))

    def _views(self) -> dict[tuple[str, str], torch.Tensor]:
        if self.event is not None:
            self.event.synchronize()
        return {name: self.flat[dtype][offset : offset + shape.numel()].view(shape)
                for name, dtype, offset, shape in self.layout}

    def loss_states(self) -> list[dict[str, torch.Tensor]]:
        """Each member's loss state (its ELR memory, say), on the CPU; {} for a member whose loss keeps none."""
        views = self._views()
        # Copies: a view would save the whole flat buffer in each member's checkpoint.
        return [{name: t.clone() for (part, name), t in views.items() if part == f"loss{j}"} for j in range(self.k)]

    def sample_states(self) -> list[dict[str, torch.Tensor] | None]:
        """Each member's per-sample dynamics (SampleDynamics' fields), on the CPU; None for each when not detecting."""
        views = self._views()
        samples = {name: t for (part, name), t in views.items() if part == "samples"}
        return [{name: t[j].clone() for name, t in samples.items()} if samples else None for j in range(self.k)]

    def members(self) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """Each member's (weights, optimizer state), on the CPU, as the run trained alone would hold them."""
        views = self._views()
        model = {name: t for (part, name), t in views.items() if part == "model"}
        momentum = {name: t for (part, name), t in views.items() if part == "momentum"}
        return list(zip(unpack_state_dict(model, self.k), unpack_state_dict(momentum, self.k), strict=True))


class PackTrainer:
    """Trains and evaluates the members side by side. `dtype` is the model's: float32 for every run; float64 makes a
    reference of the same steps, against which the device check (scripts/gpu_check.py) and the tests measure what
    packing, precision and compilation change, the images and losses then being float64 too."""

    def __init__(self, members: list[Member], device: torch.device, dtype: torch.dtype = torch.float32):
        self.members = members
        self.k = len(members)
        cfg = self.cfg = members[0].cfg
        data = members[0].data
        self.num_classes = data.num_classes
        self.device, self.dtype = device, dtype
        self.cuda_settings = placement.prepare(device, cfg.deterministic)  # before any of the pack's CUDA work
        self.model, self.forward = _model_for(cfg, self.k, data.in_channels, data.num_classes, device, dtype)
        self.model.load_state_dict(pack_state_dicts([m.model_state for m in members]))
        self.params = list(self.model.parameters())
        self.optimizer = optimizer.build(self.params, cfg, device)
        if members[0].momentum is not None:
            optimizer.load_state(self.optimizer, self.model, pack_state_dicts([m.momentum for m in members]))
        self.autocast = precision.autocast(cfg.precision, device)
        # What a member's loss needs: made before training (Member.needs, experiments/needs.py), each sample's index
        # from the loader, the model's parameters here.
        self.loss = PackLoss([m.loss for m in members], [m.needs for m in members], device, dtype)
        self.wants_parameters = self.loss.delta is not None
        self.samples = (None if members[0].samples is None
                        else SampleDynamics([m.samples for m in members], device, dtype))
        self.epoch = 0  # the epoch training, for the dynamics
        self.batches = PackLoader([m.data.loader for m in members], cfg.channels_last,
                                  with_index=self.samples is not None
                                  or any("index" in tce.LOSS_NEEDS[m.loss[0]] for m in members))
        self.eval_sets = {name: PackEvalSet([m.data.eval_sets[name] for m in members], cfg.channels_last)
                          for name in members[0].data.eval_sets}
        # What a snapshot reads: the whole training portion, then the holdout (where there is one) and the test set.
        self.snapshot_sets = {"portion": PackEvalSet([m.data.portion for m in members], cfg.channels_last),
                              **{name: s for name, s in self.eval_sets.items() if name != "train"}}
        self.eager_steps = 0  # training steps this trainer ran without torch.compile

    def _logits(self, x: torch.Tensor, eager: bool = False) -> torch.Tensor:
        with self.autocast:
            out = self.forward(x.to(self.dtype), eager)
        # Losses see float32 logits (bf16 autocast's too), float64 ones from a float64 reference.
        return out.to(self.dtype).view(x.shape[0], self.k, self.num_classes)

    @property
    def compiled(self) -> bool:
        return self.forward.compiled is not None

    def compile_record(self) -> dict:
        """summary.json's `compile`: the graphs this process has compiled, and the steps this trainer ran eagerly."""
        return {"graphs": compiled_graphs(), "eager_steps": self.eager_steps}

    def _guarded(self, work: Callable[[], T]) -> T:
        """work() in the run's arithmetic; once more, eagerly, if it failed because torch.compile could not compile."""
        with precision.arithmetic(self.cfg.precision):
            try:
                return work()
            except Exception as error:
                if not self.forward.fall_back(error):
                    raise
                return work()

    def step(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on the members' batches side by side, x (B, K·C, H, W) and y (B, K), and the samples'
        indices (B, K) where a member's loss needs them, as PackLoader gives them; returns per-member loss and
        correct count."""
        return self._guarded(lambda: self._step(x, y, index))

    def _step(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        eager = x.shape[0] != self.cfg.batch_size  # the partial last batch
        self.eager_steps += eager or not self.compiled
        logits = self._logits(x, eager)
        parameters = self.params if self.wants_parameters else None
        losses = self.loss(logits, y, index, parameters)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        if self.cfg.optim.clip_grad_norm is not None:
            clip_grad_norms(self.params, self.k, self.cfg.optim.clip_grad_norm)
        self.optimizer.step()
        if self.samples is not None:  # after the step: a retry of a step that failed to compile counts it once
            self.samples.update(logits, y, index, self.epoch)
        return losses.detach(), (logits.detach().argmax(-1) == y).sum(0)

    def train_epoch(self, epoch: int) -> dict[str, list[float]]:
        """One epoch over every member's own batches; returns per-member train_loss and train_acc."""
        lr = lr_at(epoch, self.cfg)
        self.epoch = epoch
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss_sum = torch.zeros(self.k, device=self.device)
        correct = torch.zeros(self.k, device=self.device, dtype=torch.int64)
        seen = 0
        batches = tqdm(self.batches, desc=f"epoch {epoch}", leave=False, disable=not self.cfg.progress,
                       dynamic_ncols=True)
        for x, y, *index in batches:
            interrupt.check()
            losses, hits = self.step(x, y, *index)
            loss_sum += losses * len(y)
            correct += hits
            seen += len(y)
        return {
            "lr": [lr] * self.k,
            "train_loss": (loss_sum / seen).tolist(),
            "train_acc": (100.0 * correct / seen).tolist(),
        }

    @torch.no_grad()
    def evaluate(self, name: str) -> list[dict]:
        """Each member's metrics on eval set `name` (experiments/evaluation.py), read with its own labels; every
        column of the set None where the members have no such set (no holdout)."""
        if name not in self.eval_sets:
            return [dict.fromkeys(evaluation.COLUMNS[name]) for _ in range(self.k)]
        return self._guarded(lambda: self._evaluate(name))

    def _evaluate(self, name: str) -> list[dict]:
        self.model.eval()
        totals, seen, size = None, 0, self.cfg.eval_batch_size
        # Compiled, every batch is padded to one shape, so that the last one compiles no graph of its own; in eval
        # mode each image's logits are its own, so the padding changes none.
        for x, y, noisy in self.eval_sets[name].batches(size, pad_to=size if self.compiled else None):
            interrupt.check()
            count = len(y)
            logits = self._logits(x)[:count]
            totals = evaluation.add(totals, evaluation.batch_sums(logits, y, noisy))
            seen += count
        return evaluation.epoch_metrics(name, totals, seen)

    @torch.no_grad()
    def snapshot(self) -> list[dict[str, torch.Tensor]]:
        """Each member's eval-mode log-softmax, float16 (N, C) on the CPU, over snapshot_sets: "portion" in the order
        of its samples' indices, "val" and "test" in theirs. Log-probabilities rather than probabilities: float16
        would round a small probability to 0, and temperature scaling needs the logits up to a shift."""
        return self._guarded(self._snapshot)

    def _snapshot(self) -> list[dict[str, torch.Tensor]]:
        self.model.eval()
        size, found = self.cfg.eval_batch_size, {}
        for name, pack_set in self.snapshot_sets.items():
            parts = [self._logits(x)[:len(y)].float().log_softmax(-1).half()
                     for x, y, _ in pack_set.batches(size, pad_to=size if self.compiled else None)]
            found[name] = torch.cat(parts).cpu()  # (N, K, C): the one host read of the snapshot
        return [{name: t[:, k].contiguous() for name, t in found.items()} for k in range(self.k)]

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

    def host_states(self) -> HostStates:
        """The members' weights and optimizer states as they stand, on their way to the host (HostStates)."""
        return HostStates(self.model.state_dict(), optimizer.state_of(self.optimizer, self.model), self.k,
                          self.loss.loss_states(), None if self.samples is None else self.samples.states())

    def member_states(self) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """Each member's weights and optimizer state, on the CPU, as the run trained alone would hold them."""
        return self.host_states().members()
