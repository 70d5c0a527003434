"""``lepton/VisualInspection-v0`` and ``lepton/WasteSorting-v0``: conveyor sorting where only a camera shows the
class (a defect on a part, the material of a piece of waste), so routing needs perception."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from lepton_sim.envs.manufacturing.appearance import (
    MATERIALS,
    Look,
    StyledPartFactory,
    inspection_look,
    material_look,
)
from lepton_sim.envs.manufacturing.conveyor_env import ROBOT_DIM, SLOT_DIM, SLOTS, ConveyorEnv, Part
from lepton_sim.envs.manufacturing.inspection_params import VisualInspectionParams, WasteSortingParams
from lepton_sim.envs.manufacturing.params import MAX_CLASSES

CLASS_OFFSET = 8  # the class one-hot's first index within a slot (conveyor_env's slot layout)


def class_indices() -> np.ndarray:
    """Indices of every slot's class one-hot in the conveyor state observation (what ``oracle_class`` fills)."""
    starts = ROBOT_DIM + SLOT_DIM * np.arange(SLOTS) + CLASS_OFFSET
    return (starts[:, None] + np.arange(MAX_CLASSES)).ravel()


class VisualInspectionEnv(ConveyorEnv):
    """
    ## Description
    A quality gate on a production line: parts ride a conveyor past a Franka Panda, which picks each one and puts
    it into the accept bin (0) or the reject bin (1). Good and defective parts are the same shape, size and base
    colour; a defective part carries a scratch, a dent or a discolouration on its top face, visible only to
    cameras (``obs_camera``, default overhead; the scenarios use "inspection", a close view where parts enter; see
    ``appearance`` for the looks and the segmentation ids
    7 = good, 8 = defective). With ``obs_mode: state`` the agent gets positions only: the class one-hot of the
    state layout is zero (``oracle_class: true`` fills it, as the ground truth a perception model must supply), so
    a state agent cannot route better than chance (half the parts, at ``defect_rate`` 0.5). Use ``obs_mode``
    pixels, state+pixels or perceived (a trained perception model's estimate of the oracle state).

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: end-effector displacement x 5 cm per step and the gripper, as ConveyorSort.

    ## Observation Space
    ``Box(-10, 10, (56,), float32)``: ConveyorSort's layout (robot, three part slots, bins); indices 16-19 + 16k
    (slot k's class one-hot) are zero unless ``oracle_class``.

    ## Rewards
    As ConveyorSort: ``sparse`` +1 per part routed to its bin, -1 per mis-routed, dropped or missed part;
    ``dense`` adds the distance shaping.

    ## Starting State
    As ConveyorPick; each part's look is drawn from a generator of its own, so appearance parameters never
    change the episode's physics.

    ## Episode End
    Terminates when every part is resolved; truncated by ``max_episode_steps`` (600 = 24 s).

    ## Info
    As ConveyorSort: ``parts_placed`` counts correct routings, ``mis_sorted`` wrong ones, ``parts_per_minute``
    correct routings per minute of simulated time, ``mis_sort_rate`` = mis-sorted / binned parts.

    ## Arguments
    See :class:`lepton_sim.envs.manufacturing.inspection_params.VisualInspectionParams`.
    """

    params_model = VisualInspectionParams
    sorting = True
    CLASS_NAMES: ClassVar[tuple[str, ...]] = ("good", "defective")

    def _build_scene(self) -> None:
        super()._build_scene()
        self.factory = StyledPartFactory(self.sim)
        self.looks: list[Look | None] = []
        self._look_rng = np.random.default_rng(0)
        self._hidden = class_indices()

    def _reset_task(self) -> None:
        # one draw from the episode's stream, whatever the appearance parameters: the physics never depends on them
        self._look_rng = np.random.default_rng(int(self.np_random.integers(2**62)))
        self.looks = []
        super()._reset_task()

    def _look(self, part: Part) -> Look:
        prm = self.params
        rng = self._look_rng
        assert isinstance(prm, VisualInspectionParams)
        return inspection_look(
            rng,
            part.part_class,
            prm.defect_kinds,
            prm.defect_size.sample(rng),
            prm.defect_contrast.sample(rng),
            prm.colour_jitter,
        )

    def _create_body(self, part: Part, start: tuple[float, float, float]) -> int:
        look = self._look(part)
        index = self.parts.index(part)
        self.looks.extend([None] * (index + 1 - len(self.looks)))
        self.looks[index] = look
        assert isinstance(self.factory, StyledPartFactory)
        return self.factory.create_styled(part.size, part.mass, part.friction, look, start)

    def oracle_observation(self) -> np.ndarray:
        """The state observation with every slot's class one-hot filled: what a perfect perception model gives."""
        return super()._state_observation()

    def _state_observation(self) -> np.ndarray:
        obs = super()._state_observation()
        if not self.params.oracle_class:  # type: ignore[attr-defined]
            obs[self._hidden] = 0.0
        return obs


class WasteSortingEnv(VisualInspectionEnv):
    """
    ## Description
    A recycling line: pieces of waste (cubes) of ``num_classes`` materials - plastic, paper, glass, metal - arrive
    uniformly often on the conveyor; bin c takes material c. Each material has three looks (colours and a
    pattern: plastic a label band, paper print lines, glass a glint, metal a brushed streak); ``material_variants``
    chooses which occur, so a suite can test looks never seen in training. As VisualInspection, the material is
    visible only to cameras: the state observation's class one-hot is zero unless ``oracle_class``, and a state
    agent routes a quarter of the pieces right (4 materials).

    ## Action Space
    ``Box(-1, 1, (4,), float32)``, as ConveyorSort.

    ## Observation Space
    ``Box(-10, 10, (56,), float32)``: ConveyorSort's layout, class one-hots zero unless ``oracle_class``.

    ## Rewards
    As ConveyorSort.

    ## Starting State
    As VisualInspection.

    ## Episode End
    Terminates when every piece is resolved; truncated by ``max_episode_steps``.

    ## Info
    As VisualInspection.

    ## Arguments
    See :class:`lepton_sim.envs.manufacturing.inspection_params.WasteSortingParams`.
    """

    params_model = WasteSortingParams  # type: ignore[assignment]
    CLASS_NAMES: ClassVar[tuple[str, ...]] = MATERIALS

    def _sample_class(self) -> int:
        return int(self.np_random.integers(self.num_classes))

    def _look(self, part: Part) -> Look:
        prm = self.params
        assert isinstance(prm, WasteSortingParams)
        return material_look(self._look_rng, part.part_class, prm.material_variants, prm.colour_jitter)
