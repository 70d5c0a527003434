"""``lepton/ConveyorSort-v0``: sort good and defective parts from a moving conveyor into their class's bin."""

from __future__ import annotations

from lepton_sim.envs.manufacturing.conveyor_env import ConveyorEnv
from lepton_sim.envs.manufacturing.params import ConveyorSortParams


class ConveyorSortEnv(ConveyorEnv):
    """
    ## Description
    As ConveyorPick, but parts come in ``num_classes`` classes: class 0 (good, green) with probability
    1 - ``defect_rate``, otherwise a defect class 1.. (red, blue, yellow, each with a dark stripe on top). Bin c
    (its rim painted in class c's colour) takes class c; a part in another bin is mis-sorted. The class is in
    the state observation (one-hot) and visible to cameras, so a perception module can later supply it.

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: end-effector displacement x 5 cm per step and the gripper, as ConveyorPick.

    ## Observation Space
    ``Box(-10, 10, (56,), float32)``: the same layout as ConveyorPick; indices 16-19 + 12k carry the class
    one-hot of the part in slot k, and bins 0..num_bins-1 are flagged present.

    ## Rewards
    ``sparse``: +1 per part in its class's bin, -1 per mis-sorted, dropped or missed part. ``dense`` adds
    -0.1 x the gripper's distance to the oldest part (or the held part's distance to above its bin).

    ## Starting State
    As ConveyorPick.

    ## Episode End
    Terminates when every part is resolved; truncated by ``max_episode_steps`` (600 = 24 s).

    ## Info
    As ConveyorPick; ``parts_placed`` counts correctly sorted parts, ``mis_sorted`` the others that reached a
    bin, ``mis_sort_rate`` = mis-sorted / binned parts.

    ## Arguments
    See :class:`lepton_sim.envs.manufacturing.params.ConveyorSortParams`.
    """

    params_model = ConveyorSortParams
    sorting = True
