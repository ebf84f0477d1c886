"""Manipulation tasks on a cell (``cells/cell.py``). No ROS.

**Lift** (``lift``): the red cube starts at a random place and yaw on the table (drawn from the
episode's seed; the green cube is parked off the table, out of view); success is the cube's
bottom face held above ``lift_height`` m over the table for ``hold_s`` s of simulated time.

**PickEither** (``pick_either``): a red and a green cube start at random places and yaws on
the table, at least ``min_separation`` m apart (centre to centre; both from the seed);
success is EITHER cube held above ``lift_height`` for ``hold_s``, as in Lift. The task has two
equally good solutions, so demonstrations are multimodal when the demonstrator picks one at
random (``cells/expert.py``: ``expert_cube``). Which cube was lifted is the episode's mode:
:attr:`lifted_object`, and :meth:`outcome` for a harness's per-episode results.

**PlaceEither** (``place_either``): Lift's red cube (same places and yaws) and two place pads
drawn on the table, one on each side of it (``scene.PADS``: ``left`` and ``right``, fixed);
success is the cube, after it was lifted above ``lift_height``, resting on either pad (its
centre over the pad, its bottom within ``place_height`` of the table) with the gripper open
past ``release_width`` for ``hold_s`` s. The expert (``cells/expert.py``: ``expert_pad``)
carries the cube to one pad, 50/50 from the seed: the choice comes after the grasp, where the
cube is already found, so the modes differ in where to go and not in what to see. The pad the
cube was placed on is the episode's mode (:attr:`lifted_object`, ``outcome()["object"]``);
a failed episode's ``outcome()`` also says where it ended (``miss``: not lifted, held, off
pad, not released, not settled; ``pad_gap_mm``: the cube from the nearest pad).

In all of them, the arm starts at the robot's home posture, gripper open. Every task has the same
interface (what ``ros/cell_loop.py`` and ``cells/record.py`` use): ``name``,
``config.time_limit``, ``reset(cell, seed) -> scene`` (the scene has ``seed``, ``cubes``
(the colours on the table) and ``to_dict()``), ``update(cell) -> success`` after each step,
``success`` (latched), ``max_height`` (m, the highest any cube on the table got),
``lifted_object`` (the colour that met the success test, or None) and ``outcome()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .cell import Cell
from .scene import CUBE_HALF, PAD_HALF, PADS


@dataclass(frozen=True)
class LiftConfig:
    """Randomisation and success of Lift (m, rad, s)."""

    cube_x: tuple[float, float] = (-0.08, 0.08)  # m, table frame (centre 0)
    cube_y: tuple[float, float] = (-0.08, 0.08)
    cube_yaw: tuple[float, float] = (-np.pi / 4, np.pi / 4)  # rad (a cube: 90 deg covers all)
    lift_height: float = 0.05  # m, cube bottom above the table
    hold_s: float = 0.5  # s the cube must stay above lift_height
    time_limit: float = 12.0  # s

    def __post_init__(self) -> None:
        for label, (lo, hi) in (("cube_x", self.cube_x), ("cube_y", self.cube_y), ("cube_yaw", self.cube_yaw)):
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"{label} must be a finite (low, high) range, got {(lo, hi)}")
        if not (0.0 < self.lift_height < 0.5 and self.hold_s >= 0.0 and self.time_limit > 0.0):
            raise ValueError("lift_height in (0, 0.5) m, hold_s >= 0 and time_limit > 0 required")


@dataclass(frozen=True)
class LiftScene:
    """One Lift episode's initial condition."""

    seed: int
    cube_xy: tuple[float, float]  # m
    cube_yaw: float  # rad

    @property
    def cubes(self) -> tuple[str, ...]:
        """The cubes on the table."""
        return ("red",)

    def to_dict(self) -> dict:
        return asdict(self)


def _lift_scene(c: LiftConfig, seed: int, scene_type: type = LiftScene):
    """Lift's cube place and yaw for ``seed`` (PlaceEither uses the same), as ``scene_type``."""
    rng = np.random.default_rng([int(seed), 7031])
    x, y = rng.uniform(*c.cube_x), rng.uniform(*c.cube_y)
    return scene_type(int(seed), (float(x), float(y)), float(rng.uniform(*c.cube_yaw)))


class _Task:
    """What every task shares: ``config``, success latched, the mode (:attr:`lifted_object`),
    :meth:`outcome`."""

    name = ""

    def __init__(self, config: LiftConfig) -> None:
        self.config = config
        self._restart()

    def _restart(self) -> None:
        self.success = False
        self.max_height = 0.0
        self.lifted_object: str | None = None

    def outcome(self) -> dict:
        """What the episode did beyond success, for per-episode results: ``object``, the cube
        that was lifted, or the pad it was placed on (None without success)."""
        return {"object": self.lifted_object}


class _HeldAbove(_Task):
    """Success tracking shared by the tasks: any cube on the table whose bottom stays above
    ``config.lift_height`` for ``config.hold_s`` s (cell time) succeeds; the first to do so is
    :attr:`lifted_object`. Subclasses set the scene up in ``reset`` and call :meth:`_restart`."""

    def _restart(self) -> None:
        super()._restart()
        self._above_since: dict[str, float] = {}  # colour -> cell-episode time it rose above, s

    def update(self, cell: Cell) -> bool:
        """Track the cubes at the cell's current time; returns :attr:`success` (latched)."""
        m = cell.metrics()
        for colour, height in m.cube_heights.items():
            self.max_height = max(self.max_height, height)
            if height > self.config.lift_height:
                since = self._above_since.setdefault(colour, m.time)
                if not self.success and m.time - since >= self.config.hold_s:
                    self.success, self.lifted_object = True, colour
            else:
                self._above_since.pop(colour, None)
        return self.success


class LiftTask(_HeldAbove):
    """Lift: :meth:`reset` sets the cell up from a seed; call :meth:`update` after each step
    of the episode (any period), then read :attr:`success`."""

    name = "lift"

    def __init__(self, config: LiftConfig | None = None) -> None:
        super().__init__(config or LiftConfig())

    def scene(self, seed: int) -> LiftScene:
        """The initial condition of episode ``seed`` (deterministic)."""
        return _lift_scene(self.config, seed)

    def reset(self, cell: Cell, seed: int) -> LiftScene:
        """Arm home, gripper open, the red cube placed from ``seed`` (the green one parked);
        success tracking restarted."""
        s = self.scene(seed)
        cell.reset(cube_xy=s.cube_xy, cube_yaw=s.cube_yaw)
        self._restart()
        return s


@dataclass(frozen=True)
class PickEitherConfig(LiftConfig):
    """Randomisation and success of PickEither (m, rad, s): each cube's place is drawn from
    ``cube_x`` x ``cube_y`` (a wider area than Lift's, to fit two cubes), redrawn together
    until their centres are ``min_separation`` apart; success as in Lift."""

    cube_x: tuple[float, float] = (-0.10, 0.10)
    cube_y: tuple[float, float] = (-0.16, 0.16)
    min_separation: float = 0.15  # m, centre to centre: the open gripper over one misses the other

    def __post_init__(self) -> None:
        super().__post_init__()
        # Two uniform draws on a side of length L are >= L / 2 apart with probability 1/4: so
        # the rejection sampling in PickEitherTask.scene accepts at least 1 draw in 4.
        half_side = 0.5 * max(self.cube_x[1] - self.cube_x[0], self.cube_y[1] - self.cube_y[0])
        if not (2 * np.sqrt(2) * CUBE_HALF < self.min_separation <= half_side):
            raise ValueError(f"min_separation must exceed a cube's diagonal ({2 * np.sqrt(2) * CUBE_HALF:.3f} m) "
                             f"and be at most half the longer side of the area ({half_side:.3f} m), "
                             f"got {self.min_separation}")


@dataclass(frozen=True)
class PickEitherScene:
    """One PickEither episode's initial condition: each cube's (x m, y m, yaw rad)."""

    seed: int
    red: tuple[float, float, float]
    green: tuple[float, float, float]

    @property
    def cubes(self) -> tuple[str, ...]:
        """The cubes on the table."""
        return ("red", "green")

    def to_dict(self) -> dict:
        return asdict(self)


class PickEitherTask(_HeldAbove):
    """PickEither: lift either of two cubes (see the module docstring). :meth:`reset` sets the
    cell up from a seed; call :meth:`update` after each step, then read :attr:`success` and
    :attr:`lifted_object` ("red", "green" or None)."""

    name = "pick_either"

    def __init__(self, config: PickEitherConfig | None = None) -> None:
        super().__init__(config or PickEitherConfig())

    def scene(self, seed: int) -> PickEitherScene:
        """The initial condition of episode ``seed`` (deterministic)."""
        c = self.config
        rng = np.random.default_rng([int(seed), 7032])
        for _ in range(1000):  # accepts >= 1 draw in 4 (PickEitherConfig): never runs out in practice
            xy = rng.uniform([c.cube_x[0], c.cube_y[0]], [c.cube_x[1], c.cube_y[1]], size=(2, 2))
            if np.linalg.norm(xy[0] - xy[1]) >= c.min_separation:
                break
        else:
            raise RuntimeError(f"seed {seed}: no two cube places {c.min_separation} m apart in 1000 draws")
        yaw = rng.uniform(*c.cube_yaw, size=2)
        red, green = ((float(x), float(y), float(a)) for (x, y), a in zip(xy, yaw))
        return PickEitherScene(int(seed), red, green)

    def reset(self, cell: Cell, seed: int) -> PickEitherScene:
        """Arm home, gripper open, both cubes placed from ``seed``; success tracking restarted."""
        s = self.scene(seed)
        cell.reset(cube_xy=s.red[:2], cube_yaw=s.red[2], green_cube=s.green)
        self._restart()
        return s


@dataclass(frozen=True)
class PlaceEitherConfig(LiftConfig):
    """Randomisation (Lift's) and success of PlaceEither (m, s): placed is the cube's centre
    over a pad (within ``scene.PAD_HALF`` in x and y), its bottom at most ``place_height``
    above the table and the measured finger opening above ``release_width``, all for
    ``hold_s``, after the cube was once above ``lift_height``."""

    place_height: float = 0.01  # m, cube bottom above the table: resting (not held up)
    release_width: float = 2 * CUBE_HALF + 0.01  # m, fingers clear of the cube
    time_limit: float = 20.0  # s

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0.0 < self.place_height < self.lift_height and self.release_width > 0.0):
            raise ValueError("place_height in (0, lift_height) m and release_width > 0 required")


@dataclass(frozen=True)
class PlaceEitherScene(LiftScene):
    """One PlaceEither episode's initial condition: Lift's, plus the pads (fixed)."""

    @property
    def pads(self) -> tuple[str, ...]:
        """The place pads on the table."""
        return tuple(PADS)


class PlaceEitherTask(_Task):
    """PlaceEither: put the cube on either pad (see the module docstring). :meth:`reset` sets
    the cell up from a seed; call :meth:`update` after each step, then read :attr:`success`
    and :attr:`lifted_object` (the pad: "left", "right" or None)."""

    name = "place_either"

    def __init__(self, config: PlaceEitherConfig | None = None) -> None:
        super().__init__(config or PlaceEitherConfig())

    def _restart(self) -> None:
        super()._restart()
        self.lifted = False  # the cube has been above lift_height
        self._placed_since: tuple[str, float] | None = None  # (pad, cell-episode time), s
        self._last: tuple[tuple[float, float], float, float] | None = None  # cube xy, height, fingers

    def scene(self, seed: int) -> PlaceEitherScene:
        """The initial condition of episode ``seed`` (deterministic): Lift's cube."""
        return _lift_scene(self.config, seed, PlaceEitherScene)

    def reset(self, cell: Cell, seed: int) -> PlaceEitherScene:
        """Arm home, gripper open, the red cube placed from ``seed``, the pads on the table;
        success tracking restarted."""
        s = self.scene(seed)
        cell.reset(cube_xy=s.cube_xy, cube_yaw=s.cube_yaw, pads=True)
        self._restart()
        return s

    def pad_under(self, xy) -> str | None:
        """The pad whose square the point ``xy`` (m, table frame) lies over, or None."""
        name, gap = self.pad_gap(xy)
        return name if gap == 0.0 else None

    def pad_gap(self, xy) -> tuple[str, float]:
        """The pad nearest the point ``xy`` (m, table frame) and the distance from the point to
        its square, m (0 over it)."""
        gaps = {name: float(np.hypot(max(abs(xy[0] - px) - PAD_HALF, 0.0), max(abs(xy[1] - py) - PAD_HALF, 0.0)))
                for name, (px, py) in PADS.items()}
        name = min(gaps, key=gaps.get)
        return name, gaps[name]

    def outcome(self) -> dict:
        """Beyond :meth:`_Task.outcome`: where the cube ended, ``miss`` (None on success), why an
        episode failed, from the last update: "not lifted" (never above lift_height), "held"
        (still above place_height: carried, or never set down), "off pad" (resting beside the
        pads), "not released" (resting on a pad, the fingers not open past release_width),
        "not settled" (released on a pad for less than hold_s when the episode ended);
        ``pad_gap_mm``: the cube's centre from the nearest pad's square (0 over it)."""
        out = super().outcome()
        if self._last is None:
            return {**out, "miss": None if self.success else "not lifted", "pad_gap_mm": None}
        (xy, height, fingers), c = self._last, self.config
        gap = round(self.pad_gap(xy)[1] * 1000.0, 1)
        if self.success:
            miss = None
        elif not self.lifted:
            miss = "not lifted"
        elif height > c.place_height:
            miss = "held"
        elif self.pad_under(xy) is None:
            miss = "off pad"
        else:
            miss = "not released" if fingers <= c.release_width else "not settled"
        return {**out, "miss": miss, "pad_gap_mm": gap}

    def update(self, cell: Cell) -> bool:
        """Track the cube at the cell's current time; returns :attr:`success` (latched)."""
        c = self.config
        m = cell.metrics()
        height = m.cube_heights["red"]
        self.max_height = max(self.max_height, height)
        self.lifted = self.lifted or height > c.lift_height
        xy, fingers = cell.cube_position("red")[:2], cell.gripper_width()
        self._last = ((float(xy[0]), float(xy[1])), float(height), float(fingers))
        pad = self.pad_under(xy) if self.lifted else None
        if pad is not None and height <= c.place_height and fingers > c.release_width:
            if self._placed_since is None or self._placed_since[0] != pad:
                self._placed_since = (pad, m.time)
            if not self.success and m.time - self._placed_since[1] >= c.hold_s:
                self.success, self.lifted_object = True, pad
        else:
            self._placed_since = None
        return self.success


TASKS = {"lift": LiftTask, "pick_either": PickEitherTask, "place_either": PlaceEitherTask}
CONFIGS = {"lift": LiftConfig, "pick_either": PickEitherConfig, "place_either": PlaceEitherConfig}


def make_task(name: str, **config) -> LiftTask | PickEitherTask | PlaceEitherTask:
    """The task ``name`` (a key of :data:`TASKS`), with its config's defaults overridden by
    ``config``."""
    if name not in TASKS:
        raise ValueError(f"unknown cell task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name](CONFIGS[name](**config) if config else None)
