"""The 2013 DQN network (Mnih et al., "Playing Atari with Deep Reinforcement Learning") as SB3's features
extractor: two convolutions (16 8x8 filters at stride 4, 32 4x4 at stride 2) and 256 features.

Why: on a CPU, PPO's updates dominate pixel training, and this network trains ~2-5x faster per image than
SB3's NatureCNN (three convolutions, 512 features) at 64x64, with the same input handling. Selected by name in the
hyperparameters (``policy_kwargs: {features_extractor_class: compact}``), so the YAML stays data.
"""

from __future__ import annotations

import gymnasium
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from lepton_sim.errors import LeptonError

NAME = "compact"  # features_extractor_class: compact


class CompactCNN(BaseFeaturesExtractor):
    """Channels-first images (SB3 transposes and scales uint8 image spaces) -> ``features_dim`` ReLU features."""

    def __init__(self, observation_space: gymnasium.Space, features_dim: int = 256) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 3:
            raise LeptonError(
                f"features_extractor_class {NAME}: needs camera images, the observations are {observation_space}"
            )
        super().__init__(observation_space, features_dim)
        channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))
