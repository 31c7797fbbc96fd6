"""A complete method in 30 lines (the README shows this file): a two-layer CNN from occluded to clean crops, trained
by the shared loop on prepare's paired crops and restoring through ``unveil restore``. Importing it registers it."""

import torch
from torch import nn

from unveil.config import Config
from unveil.data.datasets import Augment, PairedDataset, select
from unveil.methods.registry import MethodSpec, register
from unveil.restorers import GeneratorRestorer
from unveil.train.method import MethodBase


class ToyConfig(Config):
    width: int = 8
    lr: float = 1e-3


def network(config: ToyConfig) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, config.width, 3, padding=1), nn.ReLU(), nn.Conv2d(config.width, 3, 3, padding=1),
                         nn.Tanh())


class ToyMethod(MethodBase):  # no validation, grid or extra state: the defaults
    name, monitor = "toy", "l1"

    def __init__(self, config, table, root, seed):  # noqa: ANN001 - the Method protocol's signature
        self.config, self.module = config, network(config.model)
        augment = Augment(config.load_size, config.crop_size, config.flip)
        self.train_set = PairedDataset(root, select(table, config.domain_a, "train"), augment, seed)

    def optimizers(self):  # noqa: ANN201
        return {"net": torch.optim.Adam(self.module.parameters(), lr=self.config.model.lr)}

    def train_step(self, batch, step):  # noqa: ANN001, ANN201
        with step.autocast():
            loss = (self.module(batch["A"]) - batch["B"]).abs().mean()
        step.backward(loss)
        return {"l1": loss}


def load(saved, device):  # noqa: ANN001, ANN201 - a checkpoint of this method -> its restorer
    net = network(ToyConfig(**saved.config["model"]))
    net.load_state_dict(saved.network_state())
    return GeneratorRestorer(net, saved.config["crop_size"], device, "toy", str(saved.path))


register(MethodSpec(name="toy", summary="A two-layer CNN, occluded -> clean.", config=ToyConfig, method=ToyMethod,
                    load=load, produces="restorer", data="paired"))
