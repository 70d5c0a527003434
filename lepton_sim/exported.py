"""An exported policy folder (lepton_sim.export_format) as a :class:`~lepton_sim.policy.Policy`.

The graph holds the whole computation from the env's observation to the final action (normalisation and action
post-processing included), so acting is: cast each input to its declared dtype, run the graph, return its output.
ONNX graphs run on onnxruntime (imported here, lazily: ``lepton-sim[export]``) and need neither torch nor the
back end that trained them; TorchScript graphs need torch, so the back end recorded in spec.json runs them. A
parameter-shared multi-agent export acts for every agent of the joint env through :class:`SharedPolicy`, with the
padding spec.json describes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lepton_sim.backends import get_backend
from lepton_sim.errors import LeptonError
from lepton_sim.export_format import ExportSpec, read_spec
from lepton_sim.multi_agent import SharedPolicy
from lepton_sim.policy import Policy

Runner = Callable[[Sequence[np.ndarray]], np.ndarray]


class ExportedPolicy(Policy):
    """One exported graph acting on batches (one agent's observations for a shared multi-agent export).

    Stateless and deterministic: ``state`` comes back unchanged."""

    def __init__(self, spec: ExportSpec, runner: Runner) -> None:
        self.spec = spec
        self.name = f"{spec.graph.policy_name} ({spec.graph.format})"
        self.observation_space = spec.graph.observation_space
        self.action_space = spec.graph.action_space
        self._runner = runner
        self._inputs = [(i.key, np.dtype(i.dtype)) for i in spec.graph.inputs]

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Policy:
        """The export at ``path`` as a policy for the env it was exported for (a SharedPolicy around the graph
        for a parameter-shared multi-agent export)."""
        agent = cls.load_graph(path, device)
        return SharedPolicy(agent) if agent.spec.shared is not None else agent

    @classmethod
    def load_graph(cls, path: str | Path, device: str = "cpu") -> "ExportedPolicy":
        """The graph alone (one agent's policy for a shared multi-agent export)."""
        spec = read_spec(path)
        if spec.graph.format == "onnx":
            runner = onnx_runner(spec.graph_path, device)
        else:
            runner = get_backend(spec.graph.backend).graph_runner(spec.graph_path, spec.graph.format, device)
        return cls(spec, runner)

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        feeds = [
            np.ascontiguousarray(observation if key is None else observation[key], dtype=dtype)
            for key, dtype in self._inputs
        ]
        return np.asarray(self._runner(feeds)), state


def onnx_runner(path: Path, device: str = "cpu") -> Runner:
    """An onnxruntime session for the graph: one thread (small policy networks are fastest so, and a thread pool
    would compete with the simulators for the cores), CUDA when a CUDA device is asked for and available."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise LeptonError(
            f"{path}: running an ONNX export needs onnxruntime (pip install 'lepton-sim[export]')"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # noqa: BLE001  (onnxruntime raises its own exception types for a bad graph)
        raise LeptonError(f"{path}: not a loadable ONNX graph ({' '.join(str(err).split())[:300]})") from None
    names = [i.name for i in session.get_inputs()]
    output = session.get_outputs()[0].name

    def run(inputs: Sequence[np.ndarray]) -> np.ndarray:
        return session.run([output], dict(zip(names, inputs)))[0]

    return run
