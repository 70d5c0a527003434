"""The exported-policy folder, and the only module that spells its layout (``lepton-sim export`` writes it,
:mod:`lepton_sim.exported` loads it, ``lepton-sim serve`` serves it)::

    DIR/
        policy.onnx | policy.pt   the graph: the env's observation in, the final action out (ONNX / TorchScript)
        spec.json                 what the graph takes and gives, what it computes, the spaces (JSON), the
                                  scenario, the training configuration, versions, the source model's checksum
        normalization.npz         the observation statistics the graph has built in (for reference; only for
                                  runs that normalised observations)

A back end's ``export`` writes the graph and returns a :class:`GraphSpec`; the core writes ``spec.json`` around it.
The spec is plain JSON, so a program in any language with an ONNX runtime can call the graph from it alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium

from lepton_sim.errors import LeptonError
from lepton_sim.space_json import space_from_json, space_to_json

EXPORT_FORMAT = "lepton-sim/export/1"
SPEC = "spec.json"
NORMALIZATION = "normalization.npz"
GRAPH_FILES = {"onnx": "policy.onnx", "torchscript": "policy.pt"}
FORMATS = tuple(GRAPH_FILES)


@dataclass(frozen=True)
class GraphInput:
    """One input of the graph: the whole (Box) observation (``key`` None) or one key of a Dict observation."""

    name: str
    key: str | None
    dtype: str
    shape: list[int | None]  # None: the batch axis (any size)


@dataclass(frozen=True)
class GraphSpec:
    """What a back end exported: the graph file, how to call it, what it computes and for which spaces."""

    format: str  # one of FORMATS
    file: str  # inside the export folder
    inputs: list[GraphInput]  # in call order (a Dict observation's key order)
    output: GraphInput  # the action, batched
    observation_space: gymnasium.Space  # one env's (one agent's for a shared multi-agent policy)
    action_space: gymnasium.Space
    includes: list[str]  # what the graph computes, in order, in words
    policy_name: str  # the source policy's name in reports
    backend: str
    details: dict[str, Any] = field(default_factory=dict)  # back-end facts (algorithm, policy class, opset, ...)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "file": self.file,
            "inputs": [asdict(i) for i in self.inputs],
            "output": asdict(self.output),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "includes": list(self.includes),
            "policy_name": self.policy_name,
            "backend": self.backend,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "GraphSpec":
        return cls(
            format=str(data["format"]),
            file=str(data["file"]),
            inputs=[GraphInput(**i) for i in data["inputs"]],
            output=GraphInput(**data["output"]),
            observation_space=space_from_json(data["observation_space"], f"{where}: graph.observation_space"),
            action_space=space_from_json(data["action_space"], f"{where}: graph.action_space"),
            includes=[str(s) for s in data["includes"]],
            policy_name=str(data["policy_name"]),
            backend=str(data["backend"]),
            details=dict(data.get("details", {})),
        )


@dataclass(frozen=True)
class SharedAgents:
    """A parameter-shared multi-agent policy: the graph acts for one agent; every agent's observation row is
    right-padded with zeros (or cut) to ``width``, and the graph's action ``a`` means ``a mod num_actions[i]``
    for agent ``i`` (lepton_sim.envs.padding)."""

    width: int
    num_actions: list[int]
    joint_observation_space: gymnasium.Space
    joint_action_space: gymnasium.Space

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "shared",
            "agent_observation_width": self.width,
            "num_actions": list(self.num_actions),
            "padding": "each agent's observation row is right-padded with zeros (or cut) to agent_observation_width; "
            "the graph's action a for agent i means a mod num_actions[i]",
            "joint_observation_space": space_to_json(self.joint_observation_space),
            "joint_action_space": space_to_json(self.joint_action_space),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "SharedAgents":
        return cls(
            width=int(data["agent_observation_width"]),
            num_actions=[int(n) for n in data["num_actions"]],
            joint_observation_space=space_from_json(data["joint_observation_space"], f"{where}: joint space"),
            joint_action_space=space_from_json(data["joint_action_space"], f"{where}: joint space"),
        )


@dataclass(frozen=True)
class ExportSpec:
    """A read ``spec.json``: the graph, the multi-agent layout (if any) and everything else as written."""

    path: Path  # the export folder
    graph: GraphSpec
    shared: SharedAgents | None
    data: dict[str, Any]  # the whole spec.json (scenario, training config, versions, source, check)

    @property
    def graph_path(self) -> Path:
        return self.path / self.graph.file

    @property
    def scenario(self) -> dict[str, Any]:
        return dict(self.data.get("scenario") or {})

    @property
    def observation_space(self) -> gymnasium.Space:
        """What the exported policy acts on: one env's observation (the joint one for a shared policy)."""
        return self.shared.joint_observation_space if self.shared else self.graph.observation_space

    @property
    def action_space(self) -> gymnasium.Space:
        return self.shared.joint_action_space if self.shared else self.graph.action_space


def is_export(path: str | Path) -> bool:
    """A folder is an export folder when it holds a spec.json of this format."""
    spec = Path(path) / SPEC
    if not spec.is_file():
        return False
    try:
        return json.loads(spec.read_text()).get("format") == EXPORT_FORMAT
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def read_spec(path: str | Path) -> ExportSpec:
    """The export folder's spec; a missing, malformed or foreign spec.json, or a missing graph file, is one
    LeptonError naming the file."""
    folder = Path(path)
    where = folder / SPEC
    try:
        data = json.loads(where.read_text())
    except FileNotFoundError:
        raise LeptonError(f"{folder} is not an exported policy (no {SPEC})") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise LeptonError(f"{where}: cannot read the export's spec ({err})") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise LeptonError(f"{where}: not a lepton-sim export spec (format {found!r}, expected {EXPORT_FORMAT!r})")
    try:
        graph = GraphSpec.from_json(data["graph"], str(where))
        shared = SharedAgents.from_json(data["multi_agent"], str(where)) if data.get("multi_agent") else None
    except (KeyError, TypeError, ValueError) as err:
        raise LeptonError(f"{where}: malformed export spec ({type(err).__name__}: {err})") from None
    if graph.format not in FORMATS:
        raise LeptonError(f"{where}: unknown graph format {graph.format!r}; known: {', '.join(FORMATS)}")
    spec = ExportSpec(folder, graph, shared, data)
    if not spec.graph_path.is_file():
        raise LeptonError(f"{folder}: the graph file {graph.file} named in {SPEC} is missing")
    return spec
