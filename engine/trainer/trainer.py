"""The training loop: epochs of ``TrainStep.run`` with logging, validation and checkpoints.

Read :meth:`Trainer.fit` and :meth:`Trainer.train_epoch` first; everything else is what they
call. Intervals count optimizer updates (``step``). Collectives (row gathering, validation
sums, RNG gathering, stop agreement) happen at the same step on every rank by construction:
every rank sees the same number of batches per epoch (the sampler guarantees it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist

from engine.checkpoint import save_checkpoint
from engine.checkpoint.manager import relative_path
from engine.trainer.resources import probe_for
from engine.trainer.resume import LATEST, Position, pending_gradients, training_state
from engine.trainer.rng import capture_rng_state
from engine.trainer.train_log import IntervalMeter, funasr_line, rank_rows, train_event_fields
from engine.trainer.validation import forward_batch, move_batch, validate
from engine.utils.dist import all_gather_rows, any_rank

log = logging.getLogger("engine")


class Trainer:
    def __init__(self, *, config: dict, run_dir: Path, dist_info, model, train_step, train_loader, train_sampler,
                 valid_loader, checkpoints, events, stop, tensorboard, position: Position,
                 assets: dict | None = None) -> None:
        self.config = config
        self.assets = assets  # token list / CMVN fingerprints, recorded in every checkpoint
        self.train_conf = config["train_conf"]
        self.run_dir = Path(run_dir)
        self.dist = dist_info
        self.model = model  # the bare module (TrainStep.model may be its DDP wrapper)
        self.train_step = train_step
        self.train_loader = train_loader
        self.sampler = train_sampler
        self.valid_loader = valid_loader
        self.checkpoints = checkpoints
        self.events = events
        self.stop = stop
        self.tensorboard = tensorboard
        self.pos = position
        self.max_epoch = int(self.train_conf["max_epoch"])
        self.meter = IntervalMeter()
        self.interval_start = time.perf_counter()
        self.last_valid: tuple[int, dict] | None = None
        self.lrs: dict[str, float] = {}
        self.grad_norms: dict[str, float] = {}
        self.skipped: dict[str, int] = {}
        self.resources = probe_for(self.dist.device)
        self.stop_reason = ""
        self.train_data_event: dict | None = None  # the start's ``data`` event of the train split
        self.pending_skips: list[dict] = []  # utterances this rank could not load since the last report
        self.load_skips: dict[str, int] = {}  # rank 0: every rank's skips so far, by reason
        self.max_update: dict[str, int] = {}  # max_update: auto as resolved, kept in checkpoints
        self.patience = int(self.train_conf.get("patience") or 0)
        self.early_stop_reason = ""
        self.end_reason = ""

    # The loop ------------------------------------------------------------------------------------

    def fit(self) -> str:
        """Train up to max_epoch or early stopping; returns the end status: "finished" or "stopped"."""
        for epoch in range(self.pos.next_epoch, self.max_epoch + 1):
            self.pos.epoch, self.pos.epoch_done = epoch, False
            if not self.train_epoch(epoch):
                if not self.early_stop_reason:
                    return "stopped"
                break
            self.pos.epoch_done = True
            self.report_skips()
            self.save_checkpoint(named=True, step_checkpoint=False)
            if self.stop_requested():
                return "stopped"
            if self.early_stop_reason:
                break
        self.end_reason = self.early_stop_reason or f"trained {self.max_epoch} epochs"
        self.average()
        return "finished"

    def train_epoch(self, epoch: int) -> bool:
        """One epoch (or its rest, after a resume); False when a stop signal ended it early."""
        self.sampler.set_epoch(epoch)
        self.meter.new_epoch()
        batches = iter(self.train_loader)
        self.interval_start = time.perf_counter()
        while True:
            tick = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                return True
            data_load_s = time.perf_counter() - tick
            for skipped in batch.get("skipped") or ():
                log.warning("rank %d skipped %s:%s key %r: %s (%s)", self.dist.rank, skipped["path"], skipped["line"],
                            skipped["key"], skipped["reason"], skipped["detail"])
                self.pending_skips.append(skipped)
            self.pos.batch_step += 1
            result = self.train_step.run(lambda model: forward_batch(model, move_batch(batch, self.dist.device)),
                                         self.pos.batch_step)
            times = {"data_load": data_load_s, "forward": result.forward_s, "backward": result.backward_s,
                     "optim": result.optim_s, "total": time.perf_counter() - tick}
            self.meter.add(result.losses, _total_grad_norm(result.grad_norms), batch, times)
            self.skipped = result.skipped
            if not result.updated:
                continue
            self.pos.step += 1
            self.lrs, self.grad_norms = result.lrs, result.grad_norms
            if self.pos.step % self.train_conf["log_interval"] == 0:
                self.log_train()
            # The epoch's last update is validated and saved as the epoch checkpoint (and a stop
            # there is honoured by fit() after it), so the epoch is never half-recorded.
            if self.sampler.consumed == len(self.sampler):
                continue
            if self.valid_loader is not None and self.pos.step % self.train_conf["validate_interval"] == 0:
                self.validate()
            if self.pos.step % self.train_conf["save_checkpoint_interval"] == 0 or self.early_stop_reason:
                self.save_checkpoint(named=True, step_checkpoint=True)
            if self.early_stop_reason:
                self.report_skips()
                return False
            if self.stop_requested():
                self.save_checkpoint(named=False, step_checkpoint=False)
                return False

    def stop_requested(self) -> bool:
        """A stop signal on any rank stops every rank at the same step."""
        stop = any_rank(self.stop.requested, self.dist.device) if self.dist.distributed else self.stop.requested
        if stop and not self.stop_reason:
            self.stop_reason = f"{self.stop.signal_name or 'stop signal on another rank'} at step {self.pos.step}"
        return stop

    # Reporting -----------------------------------------------------------------------------------

    def log_train(self) -> None:
        """Gather every rank's interval means to rank 0: one ``train`` event, one FunASR line per rank."""
        self.report_skips()
        row, loss_names = self.meter.row(self.dist.device, self.resources)
        rows = rank_rows(all_gather_rows(row, self.dist.device), loss_names)
        elapsed = time.perf_counter() - self.interval_start
        self.meter.reset()
        self.interval_start = time.perf_counter()
        if not self.dist.is_main:
            return
        fields = train_event_fields(rows, epoch=self.pos.epoch, step=self.pos.step, batch=self.sampler.consumed,
                                    batches_per_epoch=len(self.sampler), lrs=self.lrs, grad_norms=self.grad_norms,
                                    elapsed_s=elapsed, frame_shift_ms=self.config["frontend_conf"]["frame_shift"],
                                    skipped=self.skipped)
        compile_status = self.train_step.compile_status
        if compile_status["requested"]:
            fields["compile"] = compile_status
        self.events.write("train", **fields)
        first_lr = next(iter(self.lrs.values()), float("nan"))
        for item in rows:
            log.info(funasr_line(item, loss_avg_rank=fields["loss"], epoch=self.pos.epoch, max_epoch=self.max_epoch,
                                 batch=self.sampler.consumed, batches_per_epoch=len(self.sampler), step=self.pos.step,
                                 lr=first_lr, device_type=self.dist.device.type))
        self.tensorboard.add("train", {**fields["losses"], "acc": fields["acc"], "padding_ratio": fields["padding_ratio"],
                                       "throughput": fields["throughput"],
                                       **{f"lr_{k}": v for k, v in self.lrs.items()}}, self.pos.step)

    def report_skips(self) -> None:
        """Collective: utterances any rank could not load since the last report go into a ``data``
        event (the train split's counts, with ``skipped_at_load`` by reason and the new problems)."""
        if self.dist.distributed:
            gathered: list = [None] * self.dist.world_size
            dist.all_gather_object(gathered, self.pending_skips)
            skips = [skip for rank_skips in gathered for skip in rank_skips]
        else:
            skips = self.pending_skips
        self.pending_skips = []
        if not skips or not self.dist.is_main:
            return
        for skip in skips:
            self.load_skips[skip["reason"]] = self.load_skips.get(skip["reason"], 0) + 1
        base = dict(self.train_data_event or {"split": "train", "lists": list(self.config["train_data_set_list"]),
                                              "utterances": 0, "hours": 0.0, "dropped": {}})
        dropped = dict(base.get("dropped") or {})
        for reason, count in self.load_skips.items():
            dropped[reason] = dropped.get(reason, 0) + count
        self.events.write("data", **{**base, "dropped": dropped, "num_dropped": sum(dropped.values()),
                                     "skipped_at_load": dict(self.load_skips), "problems": skips[:20],
                                     "epoch": self.pos.epoch, "step": self.pos.step})

    def validate(self) -> dict:
        metrics = validate(self.model, self.valid_loader, self.dist.device)
        self.last_valid = (self.pos.step, metrics)
        self.track_patience(metrics)
        if self.dist.is_main:
            terms = {k: v for k, v in metrics.items() if k.startswith("loss")}
            self.events.write("valid", epoch=self.pos.epoch, step=self.pos.step, loss=metrics.get("loss"),
                              acc=metrics.get("acc"), losses=terms, utterances=metrics["utterances"])
            log.info("valid, epoch: %d/%d, total step: %d, %s", self.pos.epoch, self.max_epoch, self.pos.step,
                     ", ".join(f"({k}: {v:.3f})" for k, v in metrics.items() if k != "utterances"))
            self.tensorboard.add("valid", {k: v for k, v in metrics.items() if k != "utterances"}, self.pos.step)
        return metrics

    def track_patience(self, metrics: dict) -> None:
        """Early stopping: ``patience`` validations in a row without a better keep-n-best metric end the
        run (validation metrics are all-reduced, so every rank decides the same at the same step)."""
        name = self.train_conf["avg_keep_nbest_models_type"]
        value = metrics.get(name)
        if value is None or not math.isfinite(value):
            return
        best = self.pos.valid_best
        better = best is None or (value > best if name == "acc" else value < best)
        if better:
            self.pos.valid_best, self.pos.valid_best_step, self.pos.valid_stale = float(value), self.pos.step, 0
        else:
            self.pos.valid_stale += 1
        if self.patience and self.pos.valid_stale >= self.patience and not self.early_stop_reason:
            self.early_stop_reason = (f"early stopping: validation {name} has not improved for {self.patience} "
                                      f"validations (best {self.pos.valid_best:.4g} at step {self.pos.valid_best_step})")
            log.info("%s; stopping at step %d", self.early_stop_reason, self.pos.step)

    # Checkpoints ---------------------------------------------------------------------------------

    def save_checkpoint(self, *, named: bool, step_checkpoint: bool) -> None:
        """Save the full state (collective: every rank's RNG state goes in).

        ``named``: an epoch (model.pt.ep{E}) or step (model.pt.ep{E}.{S}) checkpoint that takes
        part in keep-n-best and averaging, validated on its own weights first. Otherwise only
        model.pt is refreshed (a stop signal: torchrun allows a few seconds, not a validation).
        """
        metrics = None
        if named and self.valid_loader is not None:
            fresh = self.last_valid is not None and self.last_valid[0] == self.pos.step
            metrics = self.last_valid[1] if fresh else self.validate()
        rng, digests = self._gather_rank_states(with_digest=named and self.dist.distributed)
        if not self.dist.is_main:
            return
        state = training_state(model=self.model, train_step=self.train_step, sampler=self.sampler,
                               position=self.pos, rng=rng,
                               pending_grads=pending_gradients(self.model) if not self.dist.distributed else None,
                               metrics=metrics, max_update=self.max_update)
        if self.assets:
            state["assets"] = self.assets
        metric_name = self.train_conf["avg_keep_nbest_models_type"]
        if named:
            saved = self.checkpoints.save(state, epoch=self.pos.epoch,
                                          step=self.pos.step if step_checkpoint else None,
                                          metrics=_checkpoint_metrics(metrics))
            path, kept, deleted = saved.path, saved.kept, saved.deleted
        else:
            path = self.run_dir / LATEST
            save_checkpoint(path, state)
            kept, deleted = [], []
        path, kept, deleted = (self.relative(path), [self.relative(p) for p in kept],
                               [self.relative(p) for p in deleted])
        extra = {"rank_weights_sha256": digests} if digests else {}
        if digests and len(set(digests)) > 1:
            log.warning("ranks hold different weights at step %d (sha256 %s): replicas have diverged",
                        self.pos.step, ", ".join(d[:12] for d in digests))
        self.events.write("checkpoint", path=path, epoch=self.pos.epoch, step=self.pos.step, metric=metric_name,
                          metrics=_checkpoint_metrics(metrics) or {}, kept=kept, deleted=deleted,
                          kind="step" if step_checkpoint else "epoch" if named else "latest", **extra)
        log.info("checkpoint %s (epoch %d, step %d)%s", path, self.pos.epoch, self.pos.step,
                 f", deleted {', '.join(deleted)}" if deleted else "")

    def _gather_rank_states(self, with_digest: bool) -> tuple[list[dict], list[str]]:
        """Every rank's RNG state (for exact resume) and, on request, a digest of its weights
        (replicas must stay bit-identical; the checkpoint event records them)."""
        mine = (capture_rng_state(), weights_digest(self.model) if with_digest else "")
        if not self.dist.distributed:
            return [mine[0]], []
        gathered: list = [None] * self.dist.world_size
        dist.all_gather_object(gathered, mine)
        return [item[0] for item in gathered], [item[1] for item in gathered if item[1]]

    def average(self) -> None:
        """Average the n best checkpoints into model.pt.avg{N} (rank 0), as FunASR ends a run."""
        count = int(self.train_conf["avg_nbest_model"])
        if count < 1 or not self.dist.is_main:
            return
        result = self.checkpoints.average(count)
        self.events.write("average", **result.to_event(self.run_dir))
        log.info("averaged %d checkpoints into %s", len(result.sources), result.path)

    def relative(self, path) -> str:
        """Paths in events are relative to the run directory when inside it (runs can be moved)."""
        return relative_path(path, self.run_dir)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes, in name order."""
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _total_grad_norm(grad_norms: dict[str, float]) -> float:
    """One number for the meter: the norm over every OptimScheduler's parameters."""
    values = [v for v in grad_norms.values() if v is not None and math.isfinite(v)]
    return math.sqrt(sum(v * v for v in values)) if values else float("nan")


def _checkpoint_metrics(metrics: dict | None) -> dict | None:
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k != "utterances"}
