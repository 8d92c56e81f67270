"""The losses of a pack's members, computed once per loss for all members that use it (tce.batched), each member
with what its loss needs (tce.LOSS_NEEDS)."""

import torch

import tce
from experiments.needs import TRANSITION_NEEDS
from tce import batched


class PackLoss:
    """The members' losses, each loss computed once for all members that use it (tce.batched), with what they need
    (tce.LOSS_NEEDS), each member its own.

    Members whose settings share a family (the loss, and its per-call parameters) are one call on their logits
    reshaped to (B·K_f, C), their parameters as tensors of one value per row (a Python number where all of them
    agree). The columns of the pack's logits are put in family order by one index_select (skipped when they are
    in it already), then split by family: the backward of both writes the (B, K, C) gradient once, where taking
    each member's column would zero-fill a (B, K, C) buffer per member.

    Needs: a member whose loss needs the model's parameters adds its penalty delta_k sum |theta_k| over its own
    weights (the packed parameters are stacked member-major on dim 0); a family's memories are one (K_f N, C) tensor
    on the device, member j's rows at j N + its sample's index; its transition matrices are one per row where its
    members' differ (B·K_f·C² numbers), made once per batch size.
    """

    def __init__(self, losses: list[tuple[str, dict]], needs: list[dict[str, torch.Tensor]] | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        needs = needs or [{} for _ in losses]
        # The L1 penalty's weight is the trainer's to apply, per member: not a parameter of the batched call.
        self.delta = None
        if any(batched.PENALTY[name] for name, _ in losses):
            self.delta = torch.tensor([params.get(batched.PENALTY[name], 0.0) if batched.PENALTY[name] else 0.0
                                       for name, params in losses], dtype=torch.float64, device=device)
        losses = [(name, {key: value for key, value in params.items() if key != batched.PENALTY[name]})
                  for name, params in losses]
        families: dict[tuple, list[int]] = {}
        for k, (name, params) in enumerate(losses):
            families.setdefault(batched.family(name, params), []).append(k)
        self.order = [k for members in families.values() for k in members]
        self.sizes = [len(members) for members in families.values()]
        self.families = []  # (name, parameters shared by the call, {parameter: one value per member})
        for members in families.values():
            name, params = losses[members[0]][0], losses[members[0]][1]
            shared = {key: value for key, value in params.items()
                      if all(losses[k][1][key] == value for k in members)}
            varying = {key: [losses[k][1][key] for k in members] for key in params if key not in shared}
            self.families.append((name, shared, varying))
        self.members = list(families.values())
        self.memories: list[torch.Tensor | None] = []  # per family: its members' memories, (K_f N, C), or None
        self.offsets: list[torch.Tensor | None] = []  # per family: where each member's rows start in it
        self.matrices: list[dict[str, torch.Tensor]] = []  # per family: each member's matrix by need, (K_f, C, C)
        for members in self.members:
            name = losses[members[0]][0]
            if "memory" in tce.LOSS_NEEDS[name]:
                memory = torch.cat([needs[k]["memory"] for k in members]).to(device, dtype)
                rows = len(needs[members[0]]["memory"])
                self.memories.append(memory)
                self.offsets.append(torch.arange(len(members), device=device) * rows)
            else:
                self.memories.append(None)
                self.offsets.append(None)
            self.matrices.append({need: torch.stack([needs[k][need] for k in members]).to(device)
                                  for need in tce.LOSS_NEEDS[name] if need in TRANSITION_NEEDS})
        self._index: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._rows: dict[tuple, dict[str, torch.Tensor]] = {}

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor | None = None,
                 parameters: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Each member's mean loss over the batch, (K,), from logits (B, K, C) and labels (B, K); with, where a
        member needs them, each sample's index in its training portion (B, K) and the model's packed parameters."""
        reorder = self.order != sorted(self.order)
        if reorder:
            order, inverse = self._indices(logits.device)
            logits, labels = logits.index_select(1, order), labels.index_select(1, order)
            index = None if index is None else index.index_select(1, order)
        parts = index.split(self.sizes, 1) if index is not None else [None] * len(self.sizes)
        means = []
        for f, ((name, shared, varying), x, y, i) in enumerate(zip(
                self.families, logits.split(self.sizes, 1), labels.split(self.sizes, 1), parts, strict=True)):
            b, k, c = x.shape
            rows = self._per_row(f, varying, b, x.dtype, x.device)
            if self.memories[f] is not None:  # member j's rows of the family's memory start at offsets[j]
                rows = {**rows, "index": (i + self.offsets[f]).reshape(b * k), "memory": self.memories[f]}
            losses = batched.per_sample_loss(name, x.reshape(b * k, c), y.reshape(b * k), **shared, **rows)
            means.append(losses.view(b, k).mean(0))
        losses = torch.cat(means)
        losses = losses.index_select(0, inverse) if reorder else losses
        if self.delta is not None:  # member k's L1 penalty over its own weights, k's slice of each packed tensor
            k = len(self.delta)
            losses = losses + self.delta.to(losses.dtype) * sum(p.abs().reshape(k, -1).sum(1) for p in parameters)
        return losses

    def loss_states(self) -> list[dict[str, torch.Tensor]]:
        """Each member's loss state as it stands on the device: its memory (N, C) for those that keep one."""
        states: list[dict[str, torch.Tensor]] = [{} for _ in self.order]
        for members, memory in zip(self.members, self.memories, strict=True):
            if memory is not None:
                for j, part in enumerate(memory.chunk(len(members))):
                    states[members[j]]["memory"] = part
        return states

    def _indices(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._index:
            order = torch.tensor(self.order, device=device)
            self._index[device] = order, torch.argsort(order)
        return self._index[device]

    def _per_row(self, family: int, varying: dict[str, list], batch: int, dtype: torch.dtype,
                 device: torch.device) -> dict:
        """Each varying parameter of a family as a tensor of (B·K_f,) values, row b·K_f + k holding member k's;
        made once per batch size and dtype."""
        key = (family, batch, dtype, device)
        if key not in self._rows:
            self._rows[key] = {name: torch.tensor(values, dtype=dtype, device=device).repeat(batch)
                               for name, values in varying.items()}
            for need, matrices in self.matrices[family].items():  # one matrix where all agree, else one per row
                same = all(torch.equal(m, matrices[0]) for m in matrices[1:])
                self._rows[key][need] = matrices[0].to(dtype) if same else matrices.to(dtype).repeat(batch, 1, 1)
        return self._rows[key]
