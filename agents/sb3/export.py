"""Export an SB3 policy as one graph (ONNX or TorchScript): the env's observation in, the final action out.

The graph computes what :class:`~lepton_sim.agents.sb3.policy.SB3Policy` ``act`` computes (SB3's ``predict`` with
``deterministic=True``), so any ONNX runtime gives lepton-sim's action with nothing to apply around it:

1. observation normalisation with the run's VecNormalize statistics, in float64 as numpy does
   (``clip((obs - mean) / sqrt(var + eps), -clip_obs, clip_obs)``, then float32), for the normalised keys;
2. channels-last images transposed to the channels-first layout SB3 trained on (VecTransposeImage), so a
   CnnPolicy / MultiInputPolicy trained on camera images takes the env's uint8 images as they come;
3. SB3's own preprocessing and network (float cast, images / 255, one-hot for discrete observations, the
   features extractor, the actor);
4. the deterministic action: the Gaussian's mean, the squashed Gaussian's tanh(mean), the argmax of the
   categorical probabilities (per dimension for MultiDiscrete), rounded Bernoulli probabilities, TD3's actor;
5. action post-processing as ``predict``: Box actions of a squashed policy (SAC, TD3, TQC) unscaled from
   [-1, 1] to [low, high], other Box actions clipped to [low, high].

The network is loaded as evaluation loads it (no unpickling: config.yaml, ``policy.pth``, npz statistics).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from lepton_sim.agents.sb3.model_files import ObsNormalizer, stats_path
from lepton_sim.agents.sb3.policy import SB3Policy
from lepton_sim.errors import LeptonError
from lepton_sim.export_format import GRAPH_FILES, NORMALIZATION, GraphInput, GraphSpec
from lepton_sim.training_config import TrainConfig

FORMATS = ("onnx", "torchscript")
EXAMPLE_BATCH = 2  # traced with two rows; the batch axis stays free (checked at batch 1 and 64 by the core)


def export_sb3(model_path: Path, config: TrainConfig, fmt: str, out_dir: Path) -> GraphSpec:
    """Write ``out_dir/policy.onnx`` or ``policy.pt`` (and ``normalization.npz`` for a normalised run)."""
    if fmt not in FORMATS:
        raise LeptonError(f"unknown export format {fmt!r}; the sb3 back end exports {', '.join(FORMATS)}")
    loaded = SB3Policy.load_weights(model_path, config, device="cpu")
    if loaded.frame_stack > 1:
        raise LeptonError(
            f"{model_path}: the policy was trained with frame_stack {loaded.frame_stack}: it stacks its last "
            f"{loaded.frame_stack} observations between calls, which a stateless graph of one observation cannot; "
            "evaluate or serve the run folder itself (lepton-sim serve RUN keeps the stack per session)"
        )
    graph = ActionGraph(loaded.model, loaded.observation_space, loaded.obs_normalizer).eval()
    inputs = graph.graph_inputs()
    example = graph.example_inputs(EXAMPLE_BATCH)
    target = out_dir / GRAPH_FILES[fmt]
    details: dict[str, Any] = {
        "algo": config.algo,
        "policy_class": type(loaded.model).__name__,
        "torch": torch.__version__,
    }
    try:
        with torch.no_grad(), _quiet():
            if fmt == "onnx":
                details["opset"] = _export_onnx(graph, example, inputs, target)
            else:
                torch.jit.save(torch.jit.trace(graph, example), str(target))
    except ImportError as err:
        raise LeptonError(
            f"exporting {fmt} needs onnx and onnxscript ({err}); pip install 'lepton-sim[export]'"
        ) from None
    except (RuntimeError, TypeError, ValueError, AssertionError) as err:  # torch's exporters' own failures
        first = " ".join(str(err).split())[:300]
        raise LeptonError(
            f"{model_path}: torch could not export the policy as {fmt} ({type(err).__name__}: {first})"
        ) from None
    if graph.normalized:
        shutil.copyfile(stats_path(model_path), out_dir / NORMALIZATION)
    output = GraphInput(name="action", key=None, dtype=graph.action_dtype, shape=[None, *map(int, graph.action_shape)])
    return GraphSpec(
        format=fmt,
        file=target.name,
        inputs=inputs,
        output=output,
        observation_space=loaded.observation_space,
        action_space=loaded.action_space,
        includes=graph.includes,
        policy_name=loaded.name,
        backend=config.backend,
        details=details,
    )


def torchscript_runner(path: Path, device: str = "cpu") -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """Run an exported TorchScript graph with torch.jit (CPU unless a CUDA device is asked for)."""
    where = device if device.startswith("cuda") else "cpu"
    try:
        module = torch.jit.load(str(path), map_location=where).eval()
    except (RuntimeError, ValueError) as err:
        raise LeptonError(f"{path}: not a loadable TorchScript graph ({' '.join(str(err).split())[:300]})") from None

    def run(inputs: Sequence[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.as_tensor(x, device=where) for x in inputs)).cpu().numpy()

    return run


def _export_onnx(graph: "ActionGraph", example: tuple[torch.Tensor, ...], inputs: list[GraphInput], path: Path) -> int:
    """torch.export-based ONNX export with a free batch axis; returns the opset written."""
    import onnx

    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        graph,
        example,
        str(path),
        input_names=[i.name for i in inputs],
        output_names=["action"],
        dynamic_shapes=(tuple({0: batch} for _ in example),),
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    model = onnx.load(str(path))
    return max(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch's exporters report progress and deprecations on stdout, warnings and logging: none of it is ours."""
    loggers = [logging.getLogger(name) for name in ("torch", "torch.onnx", "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class ActionGraph(torch.nn.Module):
    """Env observation(s) -> final action, as SB3Policy.act computes it (see the module docstring).

    Inputs in the order of :meth:`graph_inputs`: the Box observation, or a Dict observation's keys in the
    space's order, each batched along the first axis with the env's dtype."""

    def __init__(self, policy: Any, observation_space: gymnasium.Space, normalizer: ObsNormalizer | None) -> None:
        super().__init__()
        self.policy = policy
        self.env_space = observation_space
        self.keys: list[str] | None = (
            list(observation_space.spaces) if isinstance(observation_space, spaces.Dict) else None
        )
        self.includes: list[str] = []
        self._setup_normalization(normalizer)
        self._setup_transpose()
        self.deterministic = _deterministic_head(policy)
        self.includes += [
            "SB3 preprocessing (float cast, images / 255, one-hot for discrete observations) and the "
            f"{type(policy).__name__} network",
            f"deterministic action: {self.deterministic[1]}",
        ]
        self._setup_actions()

    # ------------------------------------------------------------------------------------------ setup
    def _setup_normalization(self, normalizer: ObsNormalizer | None) -> None:
        self.normalized = normalizer is not None and normalizer.norm_obs
        self.norm_keys: list[str | None] = []
        if normalizer is None or not self.normalized:
            return
        stats = normalizer.obs if isinstance(normalizer.obs, dict) else {None: normalizer.obs}
        for i, (key, rms) in enumerate(stats.items()):
            self.norm_keys.append(key)
            self.register_buffer(f"obs_mean_{i}", torch.as_tensor(np.asarray(rms.mean, np.float64)))
            # numpy computes sqrt(var + eps) in float64 each call: the same number, computed once
            self.register_buffer(
                f"obs_std_{i}", torch.as_tensor(np.sqrt(np.asarray(rms.var, np.float64) + normalizer.epsilon))
            )
        self.clip_obs = float(normalizer.clip_obs)
        where = "" if self.keys is None else f" (keys: {', '.join(str(k) for k in self.norm_keys)})"
        self.includes.append(
            f"observation normalisation{where}: clip((obs - mean) / sqrt(var + {normalizer.epsilon:g}), "
            f"-{self.clip_obs:g}, {self.clip_obs:g}) in float64, then float32 (the run's VecNormalize statistics, "
            f"also in {NORMALIZATION})"
        )

    def _setup_transpose(self) -> None:
        from stable_baselines3.common.preprocessing import is_image_space

        def needs(env: gymnasium.Space, trained: gymnasium.Space) -> bool:
            return is_image_space(trained) and env.shape != trained.shape

        trained = self.policy.observation_space
        if self.keys is None:
            self.transpose: list[str | None] = [None] if needs(self.env_space, trained) else []
        else:
            self.transpose = [k for k in self.keys if needs(self.env_space[k], trained[k])]
        if self.transpose:
            where = "" if self.keys is None else f" (keys: {', '.join(str(k) for k in self.transpose)})"
            self.includes.append(f"image transpose{where}: channels-last (H, W, C) to channels-first (C, H, W)")

    def _setup_actions(self) -> None:
        space = self.policy.action_space
        self.action_shape = tuple(space.shape)
        self.squash = bool(isinstance(space, spaces.Box) and self.policy.squash_output)
        self.clip = isinstance(space, spaces.Box) and not self.squash
        if isinstance(space, spaces.Box):
            self.register_buffer("action_low", torch.as_tensor(np.asarray(space.low, np.float32)))
            self.register_buffer("action_high", torch.as_tensor(np.asarray(space.high, np.float32)))
            self.includes.append(
                "unscale from [-1, 1] to the action space: low + 0.5 * (a + 1) * (high - low)"
                if self.squash
                else "clip to the action space [low, high]"
            )
        self.action_dtype = "float32" if isinstance(space, (spaces.Box, spaces.MultiBinary)) else "int64"

    # ------------------------------------------------------------------------------------------ inputs
    def graph_inputs(self) -> list[GraphInput]:
        def one(name: str, key: str | None, space: gymnasium.Space) -> GraphInput:
            return GraphInput(name=name, key=key, dtype=np.dtype(space.dtype).name, shape=[None, *space.shape])

        if self.keys is None:
            return [one("observation", None, self.env_space)]
        return [one(f"observation.{k}", k, self.env_space[k]) for k in self.keys]

    def example_inputs(self, batch: int) -> tuple[torch.Tensor, ...]:
        space = self.env_space
        space.seed(0)
        rows = [space.sample() for _ in range(batch)]
        if self.keys is None:
            return (torch.as_tensor(np.stack(rows)),)
        return tuple(torch.as_tensor(np.stack([r[k] for r in rows])) for k in self.keys)

    # ------------------------------------------------------------------------------------------ graph
    def forward(self, *observation: torch.Tensor) -> torch.Tensor:
        obs: Any = dict(zip(self.keys, observation)) if self.keys is not None else {None: observation[0]}
        for i, key in enumerate(self.norm_keys):
            mean, std = getattr(self, f"obs_mean_{i}"), getattr(self, f"obs_std_{i}")
            obs[key] = ((obs[key].double() - mean) / std).clamp(-self.clip_obs, self.clip_obs).float()
        for key in self.transpose:
            obs[key] = obs[key].permute(0, 3, 1, 2)
        action = self.deterministic[0](obs if self.keys is not None else obs[None])
        action = action.reshape((-1, *self.action_shape))
        if self.squash:
            return self.action_low + 0.5 * (action + 1.0) * (self.action_high - self.action_low)
        if self.clip:
            return torch.minimum(torch.maximum(action, self.action_low), self.action_high)
        return action


def _deterministic_head(policy: Any) -> tuple[Callable[[Any], torch.Tensor], str]:
    """The deterministic action of an SB3 policy without torch.distributions objects (their argument checks do
    not export): the mode of each distribution as SB3 computes it, and its description."""
    from stable_baselines3.common import distributions as dist
    from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel

    if isinstance(policy, ActorCriticPolicy):
        kind = policy.action_dist

        def out(obs: Any) -> torch.Tensor:
            features = BaseModel.extract_features(policy, obs, policy.pi_features_extractor)
            return policy.action_net(policy.mlp_extractor.forward_actor(features))

        if isinstance(kind, dist.CategoricalDistribution):
            return (lambda obs: _categorical_mode(out(obs))), "argmax of the categorical probabilities"
        if isinstance(kind, dist.MultiCategoricalDistribution):
            dims = [int(d) for d in kind.action_dims]

            def multi(obs: Any) -> torch.Tensor:
                return torch.stack([_categorical_mode(part) for part in torch.split(out(obs), dims, dim=1)], dim=1)

            return multi, "argmax of the categorical probabilities, per dimension"
        if isinstance(kind, dist.BernoulliDistribution):
            return (lambda obs: torch.round(torch.sigmoid(out(obs)))), "rounded Bernoulli probabilities"
        if isinstance(kind, dist.StateDependentNoiseDistribution):
            if kind.bijector is not None:
                return (lambda obs: torch.tanh(out(obs))), "tanh of the gSDE mean"
            return out, "mean of the gSDE distribution"
        if isinstance(kind, dist.SquashedDiagGaussianDistribution):
            return (lambda obs: torch.tanh(out(obs))), "tanh of the squashed Gaussian's mean"
        if isinstance(kind, dist.DiagGaussianDistribution):
            return out, "mean of the Gaussian"
        raise LeptonError(f"cannot export a policy with a {type(kind).__name__} action distribution")
    actor = getattr(policy, "actor", None)
    if actor is not None and hasattr(actor, "get_action_dist_params"):  # SAC, TQC: always squashed

        def squashed(obs: Any) -> torch.Tensor:
            return torch.tanh(actor.get_action_dist_params(obs)[0])

        return squashed, "tanh of the squashed Gaussian's mean (the actor's)"
    if actor is not None:  # TD3: a deterministic actor ending in tanh
        return actor, "the deterministic actor's output"
    raise LeptonError(f"cannot export a {type(policy).__name__} policy")


def _categorical_mode(logits: torch.Tensor) -> torch.Tensor:
    """argmax of torch's Categorical(logits).probs, computed as torch computes them (normalised logits, softmax)."""
    logits = logits - logits.logsumexp(dim=-1, keepdim=True)
    return torch.argmax(torch.softmax(logits, dim=-1), dim=1)
