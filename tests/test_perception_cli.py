"""``lepton-sim perception``: collect, show, pretrain, train and evaluate through the command line, each printing
where its result went; a malformed command line is a usage error (exit 2), anything else that fails one line
on stderr (exit 1)."""

from __future__ import annotations

import pytest
import torch
from perception_fixtures import make_synthetic_dataset

from lepton_sim.cli import main


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _fails(capsys, argv: list[str], code: int) -> str:
    if code == 2:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    else:
        assert main(argv) == code
    err = capsys.readouterr().err.strip()
    if code == 1:
        assert len(err.splitlines()) == 1 and err.startswith("lepton-sim perception: error: "), err
    return err


def test_the_whole_loop_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "data"
    argv = ["perception", "collect", "driving/lane-keep", "--frames", "24", "--out", str(data), "--no-progress"]
    argv += ["--set", "camera_size=32", "--set", "params.lanes=2", "--max-episode-frames", "6", "--sensor", "clean"]
    argv += ["--sensor", "blur@2", "--policy", "scripted"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"dataset: {data}  24 frames: train" in out
    assert main(["perception", "show", str(data)]) == 0
    out = capsys.readouterr().out
    assert "lane_offset" in out and (data / "contact_sheet.png").exists()
    assert (
        main(
            ["perception", "pretrain", str(data), "--out", str(tmp_path / "ssl"), "--epochs", "1"]
            + ["--batch-size", "8", "--no-progress", "--device", "cpu"]
        )
        == 0
    )
    assert "encoder: " in capsys.readouterr().out
    model = tmp_path / "model"
    argv = ["perception", "train", str(data), "--out", str(model), "--epochs", "1", "--init", str(tmp_path / "ssl")]
    argv += ["--head", "lane_offset,heading_error", "--head", "state", "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    assert f"model: {model / 'model.pt'}" in capsys.readouterr().out
    assert main(["perception", "evaluate", str(model), str(data), "--no-progress", "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "lane_offset" in out and "MAE" in out and (model / "eval-data-val" / "report.md").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    _fails(capsys, ["perception"], 2)
    _fails(capsys, ["perception", "collect", "driving/lane-keep", "--out", str(tmp_path / "d")], 2)  # no --frames
    _fails(capsys, ["perception", "collect", "driving/lane-keep", "--frames", "0", "--out", str(tmp_path / "d")], 2)
    err = _fails(capsys, ["perception", "collect", "x", "--frames", "5", "--out", "d", "--split", "0.5,0.5"], 2)
    assert "train,val,test" in err
    _fails(capsys, ["perception", "train", "d", "--out", "m", "--device", "gpu"], 2)
    _fails(capsys, ["perception", "train", "d", "--out", "m", "--label-fraction", "1.5"], 2)
    _fails(capsys, ["perception", "pretrain", "d", "--out", "m", "--method", "byol"], 2)
    assert not (tmp_path / "d").exists()


def test_failures_are_one_line_and_exit_1(tmp_path, capsys):
    err = _fails(capsys, ["perception", "collect", "driving/nope", "--frames", "4", "--out", str(tmp_path / "d")], 1)
    assert "driving/nope" in err and not (tmp_path / "d").exists()
    _fails(
        capsys,
        ["perception", "collect", "driving/lane-keep", "--frames", "4", "--out", str(tmp_path / "d")]
        + ["--sensor", "fog@2"],
        1,
    )
    err = _fails(capsys, ["perception", "show", str(tmp_path / "missing")], 1)
    assert "no such dataset folder" in err
    err = _fails(capsys, ["perception", "train", str(tmp_path / "missing"), "--out", str(tmp_path / "m")], 1)
    assert "no such dataset folder" in err
    data = make_synthetic_dataset(tmp_path / "syn", frames=48, size=24)
    err = _fails(capsys, ["perception", "evaluate", str(tmp_path / "none.pt"), str(data)], 1)
    assert "no such perception checkpoint" in err
    err = _fails(capsys, ["perception", "train", str(data), "--out", str(tmp_path / "m"), "--head", "speed"], 1)
    assert "no such label" in err
    err = _fails(capsys, ["perception", "train", str(data), "--out", str(tmp_path / "m"), "--device", "cuda:7"], 1)
    assert "cuda:7" in err
