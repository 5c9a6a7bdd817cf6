"""Tiny models for the OptimScheduler tests: no batch-dependent layers, so accumulation is exact."""

import torch


class EncDec(torch.nn.Module):
    """Top-level children ``encoder`` and ``decoder``, like the ASR model; two losses on one graph."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8))
        self.decoder = torch.nn.Linear(8, 3)
        self.register_buffer("input_mean", torch.zeros(6))  # a running statistic, like BatchNorm's

    def forward(self, x, y):
        if self.training:
            with torch.no_grad():
                self.input_mean.mul_(0.9).add_(0.1 * x.mean(0))
        hidden = self.encoder(x)
        out = self.decoder(hidden)
        loss_dec = ((out.float() - y) ** 2).mean()
        loss_enc = (hidden.float() ** 2).mean()
        return {"loss": loss_dec + 0.1 * loss_enc, "loss_dec": loss_dec, "loss_enc": loss_enc, "batch_size": x.shape[0]}


def data(num: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num, 6, generator=generator), torch.randn(num, 3, generator=generator)


def entry(sche_type="constant", lr=0.05, optim_type="SGD", **conf):
    return {"type": sche_type, "conf": {"optim_type": optim_type, "optim_conf": {"lr": lr}, **conf}}


def params_of(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}
