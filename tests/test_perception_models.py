"""Perception models (lepton_sim/perception: models, train, pretrain, checkpoint, predict, evaluate) on a synthetic
dataset whose labels are known exactly: training lowers the loss and beats chance on held-out frames;
SimSiam and the autoencoder pretrain and their encoder loads into the supervised model (fine-tuned at a lower
learning rate, or frozen for a linear probe); training repeats for a seed and restores torch's threads; the
loaded model predicts in the labels' layout; a missing, corrupt, unsafe or mismatched checkpoint (other input
size, other heads) is a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from perception_fixtures import make_synthetic_dataset

from lepton_sim.errors import LeptonError
from lepton_sim.perception import evaluate, load_dataset, load_encoder, load_model, pretrain, train
from lepton_sim.perception.checkpoint import CheckpointError, encoder_state, read_checkpoint
from lepton_sim.perception.models import EncoderConfig

FAST = {"epochs": 1, "batch_size": 32, "device": "cpu"}


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == before  # every call restores the caller's setting
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("perception") / "squares", frames=360, size=32)


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    return train(data, out, progress=False, epochs=12, batch_size=32, lr=3e-3, augment="none", device="cpu")


@pytest.fixture(scope="module")
def simsiam(data, tmp_path_factory):
    return pretrain(data, tmp_path_factory.mktemp("ssl") / "simsiam", progress=False, **FAST)


def test_training_lowers_the_loss_and_beats_chance_on_held_out_frames(model, data, tmp_path):
    record = json.loads((model / "train.json").read_text())
    history = record["history"]
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert record["training"]["parameters"] > 300_000 and record["training"]["device_used"] == "cpu"
    report = evaluate(model, data, split="test", out=tmp_path / "eval", progress=False, device="cpu")
    heads = {k: v["rows"][0] for k, v in report["heads"].items()}
    assert heads["colour"]["macro_f1"] > 0.8  # chance: 1/3
    assert heads["square_present"]["macro_f1"] > 0.6
    test = load_dataset(data).split("test")
    present = test.labels["square_present"][:, 0] > 0
    spread = np.abs(test.labels["position"][present] - test.labels["position"][present].mean(axis=0)).mean()
    assert heads["position"]["mae"] < 0.7 * spread  # better than always guessing the mean
    assert heads["position"]["frames"] == int(present.sum())  # a masked head counts its frames only
    for name in ("report.json", "report.md", "report.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "| noise@2 |" in md and "| severity 2 |" in md and "confusion matrix" in md


def test_pretraining_runs_and_its_encoder_initialises_the_supervised_model(data, simsiam, tmp_path):
    ae = pretrain(data, tmp_path / "ae", progress=False, method="autoencoder", **FAST)
    for folder, method in ((simsiam, "simsiam"), (ae, "autoencoder")):
        record = json.loads((folder / "pretrain.json").read_text())
        assert record["pretraining"]["method"] == method and np.isfinite(record["history"][0]["loss"])
        _, kind, meta, _ = read_checkpoint(folder)
        assert kind == "encoder" and meta["encoder"]["height"] == 32
    assert 0.0 < json.loads((simsiam / "pretrain.json").read_text())["history"][0]["collapse"] < 1.0
    pretrained, _ = encoder_state(simsiam, EncoderConfig.make("small", (32, 32, 3)))
    probe = train(
        data, tmp_path / "probe", progress=False, init=str(simsiam), linear_probe=True, heads=["colour"], **FAST
    )
    tuned = train(data, tmp_path / "tuned", progress=False, init=str(ae), lr=1e-3, **FAST)
    probed = load_model(probe).model.encoder.state_dict()
    for key, value in pretrained.items():  # the frozen encoder is the pretrained one, weight for weight
        torch.testing.assert_close(probed[key], value, rtol=0, atol=0)
    record = json.loads((tuned / "train.json").read_text())["training"]
    assert record["encoder_lr_used"] == pytest.approx(1e-4) and record["init_from"]["method"] == "autoencoder"
    assert json.loads((probe / "train.json").read_text())["training"]["encoder_lr_used"] == 0.0
    encoder, cfg = load_encoder(simsiam)  # e.g. for an SB3 features extractor: SB3's images are already / 255
    assert cfg.features == 256 and encoder(torch.rand(2, 3, 32, 32)).shape == (2, 256)
    encoder, _ = load_encoder(probe)  # a trained model's encoder (without its heads)
    x = torch.from_numpy(load_dataset(data).split("test").frames[:2])
    torch.testing.assert_close(encoder(x.permute(0, 3, 1, 2).float() / 255), load_model(probe).model.features(x))
    # a supervised model's encoder initialises another model too (transfer)
    again = train(data, tmp_path / "again", progress=False, init=str(probe), heads=["position"], **FAST)
    assert (again / "model.pt").exists()


def test_training_repeats_for_a_seed(data, tmp_path):
    a = load_model(train(data, tmp_path / "a", progress=False, seed=3, **FAST)).model.state_dict()
    b = load_model(train(data, tmp_path / "b", progress=False, seed=3, **FAST)).model.state_dict()
    c = load_model(train(data, tmp_path / "c", progress=False, seed=4, **FAST)).model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_a_loaded_model_predicts_in_the_labels_layout(model, data):
    perception = load_model(model)
    test = load_dataset(data).split("test")
    out = perception(test.frames[:5])
    assert out["colour"].shape == (5,) and out["colour"].dtype == np.int64
    assert out["quadrants"].shape == (5, 4) and out["quadrants"].dtype == np.uint8
    assert out["position"].shape == (5, 2) and out["position"].dtype == np.float32
    np.testing.assert_array_equal(perception(test.frames[:5].transpose(0, 3, 1, 2))["colour"], out["colour"])
    np.testing.assert_array_equal(perception.state(test.frames[:5]), out["state"])
    assert perception.features(test.frames[:3]).shape == (3, 256)
    assert perception.image_shape == (32, 32, 3) and [s.name for s in perception.labels][0] == "state"
    with pytest.raises(LeptonError, match="takes 32x32x3 images"):
        perception(np.zeros((2, 40, 40, 3), np.uint8))
    with pytest.raises(LeptonError, match="uint8"):
        perception(np.zeros((2, 32, 32, 3), np.float32))


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and len(text) < 300, text
    return text


def test_missing_corrupt_and_unsafe_checkpoints_are_one_line_errors(model, tmp_path):
    with pytest.raises(CheckpointError, match="no such perception checkpoint") as err:
        load_model(tmp_path / "none.pt")
    _one_line(err)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.pt or encoder.pt") as err:
        load_model(tmp_path / "empty")
    _one_line(err)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((model / "model.pt").read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable perception checkpoint") as err:
        load_model(corrupt)
    _one_line(err)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a lepton-sim perception checkpoint") as err:
        load_model(other)
    _one_line(err)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "lepton-sim-perception-checkpoint", "payload": EncoderConfig("small", 1, 1, 1, 1)}, unsafe)
    with pytest.raises(CheckpointError, match="refused") as err:
        load_model(unsafe)
    _one_line(err)


def test_mismatched_checkpoints_are_one_line_errors(model, data, simsiam, tmp_path):
    with pytest.raises(CheckpointError, match="pretrained encoder without heads") as err:
        load_model(simsiam)
    _one_line(err)
    small = make_synthetic_dataset(tmp_path / "small", frames=48, size=24)
    with pytest.raises(CheckpointError, match="needs a small encoder for 24x24x3") as err:
        train(small, tmp_path / "x", progress=False, init=str(simsiam), **FAST)
    _one_line(err)
    with pytest.raises(
        CheckpointError, match="a small encoder for 32x32x3 images, but this model needs a small encoder for 32x32x4"
    ):
        encoder_state(simsiam, EncoderConfig.make("small", (32, 32, 4)))
    with pytest.raises(CheckpointError, match="needs a nature encoder"):
        encoder_state(simsiam, EncoderConfig.make("nature", (36, 36, 3)))
    with pytest.raises(LeptonError, match="needs images of at least 36 pixels"):
        train(data, tmp_path / "y", progress=False, arch="nature", **FAST)
    with pytest.raises(LeptonError, match="takes 32x32x3 images") as err:
        evaluate(model, small, progress=False, device="cpu")
    _one_line(err)
    probe = train(data, tmp_path / "z", progress=False, heads=["colour"], **FAST)
    manifest = json.loads((small / "manifest.json").read_text())
    fewer = tmp_path / "fewer"
    (fewer / "shards").mkdir(parents=True)
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            (fewer / shard).write_bytes((small / shard).read_bytes())
    manifest["labels"] = [s for s in manifest["labels"] if s["name"] != "colour"]
    manifest["image"]["shape"] = [32, 32, 3]
    (fewer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LeptonError, match="predicts 'colour', which dataset .* does not label") as err:
        evaluate(probe, fewer, progress=False, device="cpu")
    _one_line(err)
    with pytest.raises(LeptonError, match="no such label"):
        train(data, tmp_path / "w", progress=False, heads=["speed"], **FAST)
    with pytest.raises(LeptonError, match="linear-probe"):
        train(data, tmp_path / "v", progress=False, linear_probe=True, **FAST)
    with pytest.raises(LeptonError, match="already holds a model"):
        train(data, model, progress=False, **FAST)
