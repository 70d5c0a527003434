"""``lepton/ConveyorPick-v0``: pick parts off a moving conveyor before they leave the reachable zone."""

from __future__ import annotations

from lepton_sim.envs.manufacturing.conveyor_env import ConveyorEnv
from lepton_sim.envs.manufacturing.params import ConveyorPickParams


class ConveyorPickEnv(ConveyorEnv):
    """
    ## Description
    A belt in front of a Franka Panda carries cube parts along +y at ``conveyor_speed``; a new part arrives
    every ~1/``arrival_rate`` s (+-20 % jitter, ``parts_per_episode`` in all). The robot must grasp each part
    while it is within reach (before y = 0.28 m) and drop it into a bin beside the robot (any bin). Parts are
    carried by belt friction (real contact physics), so a part slips while it speeds up and the belt drags on a
    grasped part until it is lifted.

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: end-effector displacement x 5 cm per step (IK, gripper down) and the gripper
    (finger opening changes by ``a[3]`` x 0.2 m), as ArmPickPlace. ``control_type="joints"``: 7 joint deltas +
    gripper.

    ## Observation Space
    ``Box(-10, 10, (56,), float32)`` (``obs_mode="state"``); parts are listed oldest first (3 slots):

    | index        | meaning                                                  | unit |
    |--------------|----------------------------------------------------------|------|
    | 0-2          | grasp point position                                     | m    |
    | 3-5          | grasp point velocity                                     | m/s  |
    | 6            | finger opening                                           | m    |
    | 7            | belt speed                                               | m/s  |
    | 8 + 12k      | slot k (0..2): 1 if a part is on the line, else 0        |      |
    | 9-11 + 12k   | slot k: part centre position                             | m    |
    | 12-14 + 12k  | slot k: part velocity                                    | m/s  |
    | 15 + 12k     | slot k: part size (cube side)                            | m    |
    | 16-19 + 12k  | slot k: part class one-hot (always class 0 here)         |      |
    | 44 + 3b      | bin b (0..3): 1 if the bin exists                        |      |
    | 45-46 + 3b   | bin b: floor centre x, y                                 | m    |

    ``obs_mode="pixels"``: a ``camera_size`` square uint8 RGB image from ``obs_camera``.

    ## Rewards
    ``sparse``: +1 for each part put into a bin, -1 for each part dropped (off the belt and outside the bins)
    or missed (carried out of reach). ``dense``: the same plus -0.1 x the distance from the gripper to the
    oldest part on the line (or from a held part to above its bin).

    ## Starting State
    Arm at neutral (plus ``initial_joint_noise``); the first part on the belt at y = -0.42 m.

    ## Episode End
    Terminates when every part of the episode is resolved (binned, dropped or missed); truncated by the
    registered ``max_episode_steps`` (500 = 20 s).

    ## Info
    ``is_success`` (at least ``success_fraction`` of the episode's parts binned), ``parts_placed``, ``dropped``,
    ``missed``, ``mis_sorted`` (0 here), ``parts_per_minute`` (of simulated time), ``drop_rate`` (dropped /
    resolved parts), ``mis_sort_rate``, ``time_to_success`` (simulated s, NaN before success).

    ## Arguments
    See :class:`lepton_sim.envs.manufacturing.params.ConveyorPickParams`.
    """

    params_model = ConveyorPickParams
    sorting = False
