"""The training configuration: one typed, validated record of what a run trains, whatever the back end.

It is written to the run folder's ``config.yaml`` and read back by evaluation, plotting and ``--resume``. Run
folders written before this model existed (with ``policy_sharing``), and before suite training (no ``suite``,
``rows``, ``validation``, ``train_env_params``), still load.

A run trained on a suite split records the suite, the split and the resolved rows it trained on (each row's
scenario with the suite's parameters merged, its weight and its share of the envs) and the validation rows its
periodic evaluation runs; ``scenario`` is then the first row's, which fixes the policy's spaces (every row shares
them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError

from lepton_sim.errors import LeptonError

MultiAgentMode = Literal["joint", "shared", "independent"]
MULTI_AGENT_MODES: tuple[str, ...] = ("joint", "shared", "independent")
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"


class TrainRow(BaseModel):
    """One row of a suite split a run trains on: ``n_envs`` of the run's envs run its scenario."""

    model_config = ConfigDict(extra="forbid")

    label: str
    scenario: dict[str, Any] = Field(description="the resolved scenario, the suite entry's params merged")
    weight: PositiveFloat = 1.0
    n_envs: PositiveInt = 1


class ValidationRow(BaseModel):
    """One row of the periodic evaluation of a suite run: ``eval_episodes`` episodes of its scenario from
    ``seed`` (seed, seed + 1, ...), or, with ``seed`` None, on the periodic evaluation seeds of the run's seed
    (lepton_sim.periodic_evaluation.evaluation_seeds)."""

    model_config = ConfigDict(extra="forbid")

    label: str
    scenario: dict[str, Any]
    seed: NonNegativeInt | None = None


class TrainConfig(BaseModel):
    """Everything a back end needs to train (or resume) a run; hyperparameters are the back end's own."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backend: str = Field("sb3", description="training back end (a lepton_sim.backends entry point)")
    algo: str = Field(description="algorithm name of the back end, e.g. ppo")
    scenario: dict[str, Any] = Field(description="the resolved scenario, overrides included")
    scenario_source: str = Field("", description="file the scenario was read from")
    hyperparams: dict[str, Any] = Field(default_factory=dict, description="the back end's hyperparameters")
    steps: PositiveInt = Field(description="total env steps (all envs together)")
    seed: NonNegativeInt = 0
    n_envs: PositiveInt = 1
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="device asked for: auto | cpu | cuda | cuda:<n>")
    multi_agent: MultiAgentMode | None = Field(None, description="None for single-agent envs")
    eval_freq: NonNegativeInt = Field(description="evaluate every N env steps (0: never)")
    eval_episodes: PositiveInt = 10
    checkpoint_freq: PositiveInt = Field(description="checkpoint every N env steps")
    time_limit: PositiveFloat | None = Field(None, description="stop after this many seconds of wall time")
    train_env_params: dict[str, Any] = Field(
        default_factory=dict,
        description="env params of the training envs only (e.g. time_to_teleport); evaluation runs the scenario's",
    )
    suite: str | None = Field(None, description="the suite trained on (None: one scenario)")
    split: str | None = Field(None, description="the suite's split trained on")
    rows: list[TrainRow] | None = Field(None, description="the suite rows trained on, resolved")
    validation: list[ValidationRow] | None = Field(None, description="the periodic evaluation's rows (suite runs)")

    @classmethod
    def from_file_data(cls, data: Any, source: str) -> "TrainConfig":
        """Validate a config.yaml mapping, upgrading older run folders (``policy_sharing: true`` -> shared)."""
        if not isinstance(data, dict):
            raise LeptonError(f"{source}: not a training configuration (expected a mapping)")
        data = dict(data)
        sharing = data.pop("policy_sharing", None)
        if "multi_agent" not in data:
            data["multi_agent"] = "shared" if sharing else None
        try:
            return cls(**data)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise LeptonError(f"{source}: invalid training configuration: {problems}") from None

    def to_file_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
