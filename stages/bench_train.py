"""``nsnet bench-train``: the share of a sampler training step spent waiting for data.

Times, over the same epochs of the real cached inputs, the wait for each batch from the loader
and the whole step (forward, loss, backward, update); the target is a data share <= 10%.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.config import TrainConfig
from pipeline.metrics import multi_hot
from pipeline.sampler import NSNetSampler, SamplerConfig
from pipeline.sampler_training import CachedClips, frame_objective, vgm_loss
from stages.train import _inputs


@dataclass
class TrainBench:
    steps: int
    data_seconds: float
    step_seconds: float

    @property
    def data_share(self) -> float:
        return self.data_seconds / (self.data_seconds + self.step_seconds)

    def table(self) -> str:
        return "\n".join(
            [
                f"sampler training benchmark: {self.steps} steps",
                f"  waiting for data   {1000 * self.data_seconds / self.steps:8.2f} ms/step",
                f"  compute            {1000 * self.step_seconds / self.steps:8.2f} ms/step",
                f"  data share         {100 * self.data_share:8.2f} %   (target <= 10%)",
            ]
        )


def bench_train(features: Path, prototypes: Path, cfg: TrainConfig, epochs: int = 3, device: str = "cpu") -> TrainBench:
    attrs, status, light, _, g = _inputs(Path(features), Path(prototypes))
    videos = attrs["manifest"]["videos"]
    labels = multi_hot([v["labels"] for v in videos], len(attrs["manifest"]["classes"]))
    keep = np.flatnonzero(status == 1)
    data = CachedClips(light[keep], np.nan_to_num(g[keep]), labels[keep], cfg.max_shift, cfg.seed)
    objective = frame_objective(cfg.fsm_target)
    dev = torch.device(device)
    model = NSNetSampler(light.shape[-1], light.shape[1], labels.shape[1], SamplerConfig(fem=cfg.fem)).to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    wait = compute = 0.0
    steps = 0
    for epoch in range(epochs):
        data.set_epoch(epoch)
        loader = iter(torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True))
        while True:
            tick = time.perf_counter()
            try:
                x, g_batch, y = next(loader)
            except StopIteration:
                break
            x, g_batch, y = x.to(dev), g_batch.to(dev), y.to(dev)
            got = time.perf_counter()
            out = model(x)
            loss = objective.loss(out.frame_logits, g_batch, y) + vgm_loss(cfg.vgm_target, out.video_logits_sal, out.video_logits_ns, y, cfg.gamma)[0]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            done = time.perf_counter()
            if epoch > 0:  # the first epoch warms up
                wait += got - tick
                compute += done - got
                steps += 1
    return TrainBench(steps, wait, compute)
