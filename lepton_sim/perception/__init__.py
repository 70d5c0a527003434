"""Perception modules: camera frames labelled by the simulator, encoders, self-supervised pretraining,
supervised heads and their evaluation (``lepton-sim perception ...``).

Python API (each loads torch only when called)::

    from lepton_sim import perception

    data = perception.collect("driving/obstacle-avoid", frames=5000, out="data/oa", policy="scripted")
    ds = perception.load_dataset("data/oa")               # manifest, label schema, ds.split("train")
    enc = perception.pretrain("data/oa", out="models/oa-ssl", method="simsiam", epochs=20)
    model_dir = perception.train("data/oa", out="models/oa", init=enc, epochs=20)
    report = perception.evaluate(model_dir, "data/oa")     # metrics per head, degradation and severity
    model = perception.load_model(model_dir)               # model(images uint8 (N, H, W, C)) -> predictions
    encoder, cfg = perception.load_encoder(enc)            # torch module: float (N, C, H, W) in [0, 1] -> features
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "collect": "lepton_sim.perception.collection",
    "load_dataset": "lepton_sim.perception.dataset",
    "pretrain": "lepton_sim.perception.pretraining",
    "train": "lepton_sim.perception.training",
    "evaluate": "lepton_sim.perception.evaluation",
    "load_model": "lepton_sim.perception.checkpoint",
    "load_encoder": "lepton_sim.perception.checkpoint",
}


def __getattr__(name: str) -> Any:  # PEP 562: torch is imported by the functions that need it
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lepton_sim.perception' has no attribute {name!r}")


__all__ = ["collect", "evaluate", "load_dataset", "load_encoder", "load_model", "pretrain", "train"]
