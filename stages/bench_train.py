"""``nsnet bench-train``: the share of a sampler training step spent waiting for data.

Runs the train stage's own epochs on the real cached inputs and times the wait for each batch
from the loader against the rest of the step (device copy, forward, loss, backward, update);
the target is a data share <= 10%.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.config import TrainConfig
from pipeline.sampler_training import frame_objective, train_epoch
from stages.train import epoch_loader, load_sampler_inputs, read_training_features, training_clips


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


class TimedLoader:
    """Iterates a loader, adding up the time spent waiting for its batches."""

    def __init__(self, loader):
        self.loader, self.seconds, self.batches = loader, 0.0, 0

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            tick = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.seconds += time.perf_counter() - tick
            self.batches += 1
            yield batch


def bench_train(features: Path, prototypes: Path, cfg: TrainConfig, epochs: int = 3, device: str = "cpu", progress: bool = False) -> TrainBench:
    """Runs the train stage's own epoch (:func:`train_epoch`) on its own data (the finished
    training videos, with their candidate frames where the cache has them, held as it holds
    them); the first epoch warms up and is not counted. ``progress`` shows a bar over the epochs."""
    inputs = read_training_features(load_sampler_inputs(Path(features), Path(prototypes)), Path(features), Path(prototypes), read_shift=True, hold=cfg.shuffle_window)
    data = training_clips(inputs, cfg)
    objective = frame_objective(cfg.fsm_target)
    dev = torch.device(device)
    model = inputs.shape.build(cfg).to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    wait = total = 0.0
    steps = 0
    for epoch in tqdm(range(epochs), desc="bench-train", unit="epoch", disable=not progress):
        loader = TimedLoader(epoch_loader(data, cfg, epoch))
        tick = time.perf_counter()
        train_epoch(model, loader, optimizer, objective, cfg.gamma, dev, cfg.grad_clip, cfg.vgm_target)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if epoch > 0:
            wait += loader.seconds
            total += time.perf_counter() - tick
            steps += loader.batches
    return TrainBench(steps, wait, total - wait)
