"""Per-sample training dynamics for label-error detection (`detect=true`): for each member of a pack and each image
of its training portion, on the device, updated from every training minibatch's logits (train mode, augmented: the
presentations that AUM and forgetting events are defined on), with no per-sample Python and no host sync.

- aum_sum, aum_count: the running sum of the given label's logit margin z_y - max_{k != y} z_k over the minibatches
  from epoch 2 on, and how many it sums (Pleiss et al., NeurIPS 2020, asappresearch/aum: AUM = aum_sum / aum_count);
- correct, forgotten, first_learned: whether the last presentation predicted the given label, the count of its
  1 -> 0 transitions (forgetting events, Toneva et al., ICLR 2019), the first epoch it was predicted (0: never);
- ema, seen: an exponential moving average of the softmax (decay EMA_DECAY; a temporal ensemble) and the number of
  presentations it averages, whose bias 1 - EMA_DECAY^seen a reader divides out;
- prediction, changed: the class last predicted (-1 before the first presentation) and, per epoch, how many samples'
  prediction changed since their previous presentation (the Label Wave signal, Yuan et al., ICLR 2024).

Each member's state is a dict of FIELDS, checkpointed with the run and written to its samples.npz
(docs/run-directory.md).
"""

import torch

EMA_DECAY = 0.9
# Each field, and whether it is a float (in the trainer's dtype) or the integer or bool dtype it has.
FIELDS = {
    "aum_sum": None, "aum_count": torch.int32, "correct": torch.bool, "forgotten": torch.int32,
    "first_learned": torch.int32, "ema": None, "seen": torch.int32, "prediction": torch.int64,
    "changed": torch.int64,
}


def fresh_state(n: int, num_classes: int, epochs: int, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The state of one run before its first step: n training images of num_classes classes, over `epochs`."""
    shapes = {"ema": (n, num_classes), "changed": (epochs,)}
    state = {name: torch.zeros(shapes.get(name, (n,)), dtype=dtype if kind is None else kind)
             for name, kind in FIELDS.items()}
    state["prediction"].fill_(-1)
    return state


class SampleDynamics:
    """The dynamics of K members side by side, each field a (K, ...) tensor on `device`, from the members' states
    (fresh_state, or as a checkpoint holds them)."""

    def __init__(self, states: list[dict[str, torch.Tensor]], device: torch.device, dtype: torch.dtype):
        self.k, self.n = len(states), states[0]["correct"].shape[0]
        self.fields = {name: torch.stack([s[name] for s in states]).to(device, dtype if kind is None else kind)
                       for name, kind in FIELDS.items()}

    def update(self, logits: torch.Tensor, y: torch.Tensor, index: torch.Tensor, epoch: int) -> None:
        """One minibatch: logits (B, K, C), given labels y (B, K) and the samples' indices in each member's training
        portion (B, K), at `epoch` (1-based). A sample appears at most once per member in a batch."""
        f, logits = self.fields, logits.detach()
        flat = (index + self.n * torch.arange(self.k, device=index.device)).reshape(-1)
        labels = y.unsqueeze(-1)
        given = logits.gather(-1, labels).squeeze(-1)
        runner_up = logits.scatter(-1, labels, float("-inf")).amax(-1)
        if epoch >= 2:
            f["aum_sum"].view(-1).index_add_(0, flat, (given - runner_up).reshape(-1).to(f["aum_sum"].dtype))
            f["aum_count"].view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
        prediction = logits.argmax(-1)
        now = (prediction == y).reshape(-1)
        before = f["correct"].view(-1)[flat]
        f["forgotten"].view(-1).index_add_(0, flat, (before & ~now).to(torch.int32))
        first = f["first_learned"].view(-1)[flat]
        f["first_learned"].view(-1)[flat] = torch.where((first == 0) & now, epoch, first).to(torch.int32)
        f["correct"].view(-1)[flat] = now
        ema = f["ema"].view(self.k * self.n, -1)
        ema[flat] = EMA_DECAY * ema[flat] + (1 - EMA_DECAY) * torch.softmax(logits, -1).reshape(flat.shape[0], -1).to(
            ema.dtype)
        f["seen"].view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
        last = f["prediction"].view(-1)[flat]
        changed = ((last >= 0) & (last != prediction.reshape(-1))).view(-1, self.k).sum(0)
        f["changed"][:, epoch - 1] += changed
        f["prediction"].view(-1)[flat] = prediction.reshape(-1)

    def states(self) -> dict[str, torch.Tensor]:
        """The fields as they stand, (K, ...) each, on the device: HostStates brings them to the host per member."""
        return self.fields
