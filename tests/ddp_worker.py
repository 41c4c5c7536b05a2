"""Run by tests/test_distributed.py, under torchrun or alone: a tiny `fit`, then rank 0 saves
the weights and history, and every rank records which checkpoint writes it made.

    python tests/ddp_worker.py OUT MODEL EPOCHS [CHECKPOINT [STOP_AFTER]]      # MODEL: ae | vae

STOP_AFTER: stop after that many epochs (as an interrupted run would); running again resumes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import cvae_lib.train as train
from cvae_lib.data import ImageSet
from cvae_lib.models.ae import AEConfig, Autoencoder, ae_loss
from cvae_lib.models.vae import VAE, VAEConfig, vae_loss
from cvae_lib.runtime import init_distributed


def main() -> None:
    out, kind, epochs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    checkpoint = sys.argv[4] if len(sys.argv) > 4 else None
    stop_after = int(sys.argv[5]) if len(sys.argv) > 5 else None
    rank, world = init_distributed()
    torch.set_num_threads(1)
    writes = []
    real_save = train.save_checkpoint
    train.save_checkpoint = lambda path, state: (writes.append(str(path)), real_save(path, state))
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(64) % 10)
    torch.manual_seed(0)                        # the same initial weights in every run
    if kind == "ae":
        model, loss = Autoencoder(AEConfig(latent_dim=8, width=8)), ae_loss
    else:                                       # stochastic: z is sampled, so resuming needs the RNG
        model, loss = VAE(VAEConfig(latent_dim=8, width=8, likelihood="logistic", kl_warmup_steps=4)), vae_loss
    cfg = train.TrainConfig(epochs=epochs, batch_size=16, lr=2e-3, warmup_steps=2, schedule="cosine",
                            hflip=True, grad_clip=1.0, progress=False, channels_last=False)
    stop = (lambda h: len(h) >= stop_after) if stop_after else None
    history = train.fit(model, loss, data, cfg, checkpoint=checkpoint, device="cpu", on_epoch=stop)
    (out / f"writes-rank{rank}.json").write_text(json.dumps(writes))
    if rank == 0:
        torch.save({"weights": model.state_dict(), "rows": history.rows, "world": world}, out / "result.pt")


if __name__ == "__main__":
    main()
