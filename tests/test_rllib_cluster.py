"""Joining a Ray cluster, safely, on loopback only: a wrong ``--ray-address`` fails within seconds with a
message naming the address and the causes; a real head (``ray start --head --block`` on 127.0.0.1 with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` and explicit ports, as a subprocess) is joined, one iteration is
trained there, and the head is stopped by its PID (never ``ray stop``: that stops every Ray process here)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib")

from lepton_sim.cli import main  # noqa: E402

SCENARIO = "driving/lane-keep"
SMALL = ["--set", "train_batch_size_per_learner=64", "--set", "minibatch_size=32", "--set", "num_epochs=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wrong_address_fails_within_seconds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    out = tmp_path / "run"
    start = time.monotonic()
    rc = main(["train", SCENARIO, "--backend", "rllib", "--ray-address", address, "--out", str(out), "--no-progress"])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert rc == 1 and elapsed < 10, (elapsed, err)
    assert f"cannot reach a Ray head at {address}" in err
    for cause in ("no head is running there", "RAY_AUTH_MODE", "ray get-auth-token"):
        assert cause in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()

    start = time.monotonic()
    rc = main(
        ["evaluate", "random", "--scenario", SCENARIO, "--episodes", "2", "--workers", "2"] + ["--ray-address", address]
    )
    assert rc == 1 and time.monotonic() - start < 10
    assert f"cannot reach a Ray head at {address}" in capsys.readouterr().err


def test_malformed_and_auto_addresses_are_refused(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", SCENARIO, "--backend", "rllib", "--ray-address", "no-port-here"]) == 1
    assert "expected HOST:PORT" in capsys.readouterr().err
    assert main(["train", SCENARIO, "--backend", "rllib", "--ray-address", "auto"]) == 1
    assert "someone else's" in capsys.readouterr().err
    assert main(["train", SCENARIO, "--ray-address", "127.0.0.1:6379"]) == 1  # sb3 trains in this process
    assert "--ray-address: for --backend rllib only" in capsys.readouterr().err


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"ray start exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"no Ray head on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture
def loopback_head(tmp_path: Path):
    """A real Ray head on 127.0.0.1 only (explicit ports, auth off on both sides), stopped by its PID."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    temp = tempfile.mkdtemp(prefix="lepton-ray-head-")
    ray = Path(sys.executable).parent / "ray"
    args = [str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", f"--port={port}"]
    for flag in (
        "--ray-client-server-port",
        "--node-manager-port",
        "--object-manager-port",
        "--dashboard-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--metrics-export-port",
        "--runtime-env-agent-port",
    ):
        args.append(f"{flag}={free_port()}")
    low = free_port()
    args += [f"--min-worker-port={low}", f"--max-worker-port={low + 200}"]
    args += ["--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"]
    head = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_port(port, head, timeout=60)
        yield f"127.0.0.1:{port}", env
    finally:
        head.send_signal(signal.SIGTERM)  # this head only: it drains and stops its own children
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=10)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_loopback_head_is_joined_and_trains_one_iteration(loopback_head, tmp_path: Path) -> None:
    address, env = loopback_head
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "lepton_sim.cli", "train", SCENARIO, "--backend", "rllib", "--steps", "64"]
    argv += ["--ray-address", address, "--out", str(out), "--eval-freq", "0", "--envs-per-runner", "1", *SMALL]
    done = subprocess.run([*argv, "--no-progress"], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Started a local Ray instance" not in done.stderr  # it joined the head
    assert (out / "model" / "lepton.json").is_file()
    progress = (out / "logs" / "part0" / "progress.csv").read_text().splitlines()
    assert len(progress) == 2  # one iteration
