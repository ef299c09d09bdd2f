"""A Lightning ``Trainer(accelerator="cpu", devices=2, strategy="ddp")`` run with ResvizCallback
(run as a script by tests/test_lightning.py: Lightning starts the second rank itself).

resnet20 with BatchNorm in eval mode on 16 fixed samples, 4 per rank and step, no shuffling: step k
of the two ranks together sees samples 8k..8k+7. Rank 0 writes the CSV logger's metrics; every
rank writes the callback's series to ``OUT/series<rank>.json``. With ``LIGHTNING_PACKAGE=pytorch_lightning``
in the environment the run uses the older ``pytorch_lightning`` package, with ``lightning`` made
unimportable so that the callback takes its fallback import too.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset

PACKAGE = os.environ.get("LIGHTNING_PACKAGE", "lightning.pytorch")
if PACKAGE == "pytorch_lightning":
    sys.modules["lightning"] = None  # type: ignore[assignment]  (so resviz falls back to the older package)
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger
else:
    import lightning.pytorch as pl  # type: ignore[no-redef]
    from lightning.pytorch.loggers import CSVLogger  # type: ignore[no-redef]

from resviz.integrations.lightning import ResvizCallback  # noqa: E402  (after choosing the package)

sys.path.insert(0, str(Path(__file__).parent))  # the shared model of the multi-process tests
from ddp_monitor import batchnorm_eval, network  # noqa: E402

SAMPLES, PER_RANK, STEPS = 16, 4, 2


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(3)
    return TensorDataset(torch.randn(SAMPLES, 3, 16, 16, generator=g), torch.randint(0, 10, (SAMPLES,), generator=g))


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = network()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def train_dataloader(self) -> DataLoader:
        """Rank r takes samples r, r + 2, ... in order: step k of both ranks together is 8k..8k+7."""
        ranks = self.trainer.world_size
        return DataLoader(Subset(data(), range(self.global_rank, SAMPLES, ranks)), batch_size=PER_RANK, shuffle=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train(self, mode: bool = True) -> Classifier:  # Lightning calls train(): keep BatchNorm in eval
        super().train(mode)
        batchnorm_eval(self.net)
        return self


def main(out: Path) -> None:
    callback = ResvizCallback(every_n_steps=1, module="net")
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=STEPS, logger=CSVLogger(str(out), name="run"),
        callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(Classifier())
    (out / f"series{trainer.global_rank}.json").write_text(json.dumps(callback.series.to_dict()))
    (out / "package.txt").write_text(type(callback).__mro__[1].__module__)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
