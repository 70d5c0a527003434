"""One PyBullet physics client per env, stepped like panda-gym: 25 Hz control, 20 substeps of 1/500 s.

Each env owns its own ``p.DIRECT`` client (``physicsClientId``), so any number of envs can live in one process.
Hot paths call the ``pybullet`` module functions with an explicit client id: the ``BulletClient`` wrapper
costs ~60 us per control step in ``__getattr__`` alone (profiled on panda-gym).

Speed choices (profiled, see benchmarks/manufacturing_throughput.py):
  * the 20 substeps are 20 ``stepSimulation`` calls, as panda-gym (PyBullet's ``numSubSteps`` would save the
    call overhead, but it is NOT equivalent: position motors then push the fingers through parts);
  * the constraint solver keeps panda-gym's 50-iteration cap but stops early once the residual is below
    ``SOLVER_RESIDUAL`` (pybullet's default 1e-7 makes it run all 50 iterations almost always);
  * robots are loaded with fixed links merged (fewer Featherstone links, same mass properties).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

import pybullet as p
import pybullet_data

PHYSICS_DT = 1.0 / 500.0  # panda-gym's PyBullet timestep
SUBSTEPS = 20  # panda-gym's n_substeps
CONTROL_DT = PHYSICS_DT * SUBSTEPS  # 0.04 s = 25 Hz control
SOLVER_ITERATIONS = 50  # pybullet's default, as panda-gym
SOLVER_RESIDUAL = 1e-4  # early exit of the solver once converged (pybullet default 1e-7)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence C-level prints (pybullet logs every merged link when loading a URDF)."""
    fd = 1  # C code writes to file descriptor 1 whatever Python's sys.stdout is
    try:
        sys.stdout.flush()
        saved = os.dup(fd)
    except (OSError, ValueError):  # no usable descriptor 1
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class BulletSim:
    """A headless PyBullet world with panda-gym's timing; ``step()`` advances one control period (0.04 s)."""

    def __init__(self) -> None:
        self.cid: int = p.connect(p.DIRECT)
        cid = self.cid
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        p.setGravity(0.0, 0.0, -9.81, physicsClientId=cid)
        p.setPhysicsEngineParameter(
            fixedTimeStep=PHYSICS_DT,
            numSolverIterations=SOLVER_ITERATIONS,
            solverResidualThreshold=SOLVER_RESIDUAL,
            deterministicOverlappingPairs=1,
            physicsClientId=cid,
        )
        self.time = 0.0  # simulated seconds since the last reset

    def step(self) -> None:
        """Advance one control period (20 physics substeps)."""
        cid = self.cid
        for _ in range(SUBSTEPS):
            p.stepSimulation(physicsClientId=cid)
        self.time += CONTROL_DT

    @property
    def connected(self) -> bool:
        return self.cid >= 0 and p.isConnected(physicsClientId=self.cid)

    def close(self) -> None:
        if self.connected:
            p.disconnect(physicsClientId=self.cid)
        self.cid = -1

    def __del__(self) -> None:  # envs dropped without close() must not leak clients
        try:
            self.close()
        except Exception:  # interpreter shutdown: pybullet may already be gone
            pass
