"""A scripted Push-T expert: greedy geometric push primitives, closed loop at the data rate.

The block is quasi-static in gym-pusht (space damping 0: it moves only while pushed) and the
agent-block contact is frictionless, so a push at contact point p (body frame) along the inward
normal n moves the block, per pixel of agent advance, by the twist

    u = (n, (r x n) / I) / (1/m + (r x n)^2 / I),   r = p - c (c: centre of gravity),

with m = 1, I = 2550 px^2 (gym-pusht's T). Every plan scores a fixed set of contact candidates
(bar top, bar ends, stem bottom, stem sides, wing undersides) by how much one push along u
reduces the weighted pose error (centre of gravity in px, angle x ``ANGLE_WEIGHT`` px/rad) minus
the travel to reach it, and executes the best: travel around the block (visibility graph over
the T inflated by the agent radius), approach along -n, push a bounded distance, re-plan.

Multimodality: the score and the detour costs get multiplicative noise from the episode's
generator, so the approach side (clockwise / anticlockwise around the T) and near-tied contacts
are chosen at random. Only successful episodes are kept as demos (``collect.py``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import shapely.geometry as sg
from shapely import affinity

from .env import GOAL_POSE, WORKSPACE

AGENT_RADIUS = 15.0
MASS, INERTIA = 1.0, 2550.0  # gym-pusht: mass 1, 2 x moment_for_poly(1, 120 x 30 box)
COG = np.array([0.0, 45.0])  # body-frame centre of gravity
ANGLE_WEIGHT = 60.0  # px per rad in the pose error
FREE_SPEED = 20.0  # px per step (10 Hz) when travelling
GAP = 3.0  # px between agent and edge at the start of a push
MAX_PUSH = 40.0  # px per primitive before re-planning
TRAVEL_COST = 0.25  # score penalty per 500 px of travel (scores are fractions of error^2)
MAX_TRAVEL_STEPS = 60  # a primitive whose travel takes longer is abandoned (re-plan without it)

# body-frame T (bar 120 x 30 at y in [0, 30], stem 30 x 90 below it)
T_BODY = sg.Polygon([(-60, 0), (60, 0), (60, 30), (15, 30), (15, 120), (-15, 120), (-15, 30), (-60, 30)])


def _candidates() -> list[tuple[np.ndarray, np.ndarray]]:
    """(contact point, push direction) pairs in the body frame."""
    c = []
    for x in (-50, -25, 0, 25, 50):
        c.append(((x, 0), (0, 1)))  # bar top, pushed towards the stem
    for x in (-10, 0, 10):
        c.append(((x, 120), (0, -1)))  # stem bottom
    c += [((-60, 15), (1, 0)), ((60, 15), (-1, 0))]  # bar ends
    for y in (50, 85, 115):
        c += [((-15, y), (1, 0)), ((15, y), (-1, 0))]  # stem sides
    for x in (35, 52):
        c += [((x, 30), (0, -1)), ((-x, 30), (0, -1))]  # wing undersides
    return [(np.array(p, float), np.array(n, float)) for p, n in c]


CANDIDATES = _candidates()


def rot(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def block_polygon(x: float, y: float, theta: float) -> sg.Polygon:
    return affinity.translate(affinity.rotate(T_BODY, theta, origin=(0, 0), use_radians=True), x, y)


def pose_error(state: np.ndarray) -> np.ndarray:
    """Goal minus current: (d cog_x, d cog_y, ANGLE_WEIGHT * d theta), theta wrapped to (-pi, pi]."""
    gx, gy, gt = GOAL_POSE
    x, y, t = state[2], state[3], state[4]
    cog = np.array([x, y]) + rot(t) @ COG
    gcog = np.array([gx, gy]) + rot(gt) @ COG
    dt = (gt - t + math.pi) % (2 * math.pi) - math.pi
    return np.array([*(gcog - cog), ANGLE_WEIGHT * dt])


@dataclass
class Primitive:
    """A planned push: waypoints (travel), then push from ``pre`` along ``n`` for ``length`` px."""

    cand: int
    waypoints: list[np.ndarray]
    pre: np.ndarray
    n: np.ndarray
    length: float
    speed: float


@dataclass
class ScriptedExpert:
    """Closed-loop expert: ``act(obs, agent_velocity) -> target (2,)`` once per 10 Hz step."""

    rng: np.random.Generator
    noise: float = 0.15
    _prim: Primitive | None = None
    _phase: str = "plan"
    _wp: int = 0
    _target: np.ndarray | None = None
    _pushed: float = 0.0
    _settle: int = 0
    _last_cand: int = -1
    _travel_steps: int = 0
    _banned: set[int] = field(default_factory=set)
    plans: list[int] = field(default_factory=list)  # candidate index of every primitive

    def act(self, obs: np.ndarray, agent_vel: np.ndarray) -> np.ndarray:
        agent = np.asarray(obs[:2], float)
        if self._target is None:
            self._target = agent.copy()
        for _ in range(4):  # phase changes within one step
            if self._phase == "plan":
                self._prim = self._plan(obs)
                if self._prim is None:  # nothing useful reachable: hold
                    return self._clip(self._target)
                self.plans.append(self._prim.cand)
                self._phase, self._wp, self._pushed, self._settle = "travel", 0, 0.0, 0
                self._travel_steps = 0
            if self._phase == "travel":
                self._travel_steps += 1
                if self._travel_steps > MAX_TRAVEL_STEPS:  # stuck (e.g. blocked by a wall): re-plan
                    self._banned = {self._prim.cand}
                    self._phase = "plan"
                    continue
                wps = self._prim.waypoints + [self._prim.pre]
                goal = wps[self._wp]
                self._target = self._toward(self._target, goal, FREE_SPEED)
                last = self._wp == len(wps) - 1
                tol = 2.5 if last else 6.0
                if np.allclose(self._target, goal) and np.linalg.norm(agent - goal) < tol:
                    if not last:
                        self._wp += 1
                        continue
                    if np.linalg.norm(agent_vel) < 30.0:
                        self._phase, self._banned = "push", set()
                        continue
                return self._clip(self._target)
            if self._phase == "push":
                p = self._prim
                if self._pushed < p.length:
                    self._pushed = min(p.length, self._pushed + p.speed)
                    self._target = p.pre + p.n * self._pushed
                    return self._clip(self._target)
                self._settle += 1
                if np.linalg.norm(agent_vel) < 8.0 or self._settle > 6:
                    self._last_cand = p.cand
                    self._phase = "plan"
                    continue
                return self._clip(self._target)
        return self._clip(self._target)

    # -- planning -----------------------------------------------------------------------------
    def _plan(self, obs: np.ndarray) -> Primitive | None:
        agent = np.asarray(obs[:2], float)
        x, y, th = float(obs[2]), float(obs[3]), float(obs[4])
        R = rot(th)
        pos = np.array([x, y])
        cog = pos + R @ COG
        err = pose_error(obs)
        e2 = float(err @ err)
        T = block_polygon(x, y, th)
        hard = T.buffer(AGENT_RADIUS + 1.0)
        soft = T.buffer(AGENT_RADIUS + 4.0)
        nodes = [np.array(c) for c in T.buffer(AGENT_RADIUS + 9.0, join_style=2).exterior.coords[:-1]]
        nodes = [q for q in nodes if _inside(q)]  # the agent cannot be sent outside the workspace
        start, escape_len = self._escape(agent, T, soft)
        graph = _visibility(nodes, soft)
        best, best_score = None, -np.inf
        for i, (p_b, n_b) in enumerate(CANDIDATES):
            p, n = pos + R @ p_b, R @ n_b
            r = p - cog
            cross = r[0] * n[1] - r[1] * n[0]
            d = 1.0 / MASS + cross * cross / INERTIA
            u = np.array([n[0] / (MASS * d), n[1] / (MASS * d), ANGLE_WEIGHT * cross / (INERTIA * d)])
            uu = float(u @ u)
            ue = float(u @ err)
            if ue <= 0:
                continue
            s = min(ue / uu, MAX_PUSH)
            reduction = (2 * s * ue - s * s * uu) / e2
            pre = p - n * (AGENT_RADIUS + GAP)
            if not _inside(pre) or i in self._banned:
                continue
            if i == self._last_cand and np.linalg.norm(agent - pre) < 8.0:
                waypoints, travel = [], float(np.linalg.norm(agent - pre))
            else:
                entry = _entry(pre, n, soft, hard)
                if entry is None or not _inside(entry):
                    continue
                path = _shortest(start, entry, nodes, graph, soft, self.rng, self.noise)
                if path is None:
                    continue
                waypoints = ([start] if escape_len > 0 else []) + path
                travel = escape_len + _length([start, *path]) + float(np.linalg.norm(entry - pre))
            score = reduction * (1 + self.noise * self.rng.uniform(-1, 1)) - TRAVEL_COST * travel / 500.0
            if score > best_score:
                best_score = score
                speed = float(np.clip(s / 4.0, 1.5, 8.0))
                best = Primitive(i, waypoints, pre, n, GAP + s, speed)
        return best

    def _escape(self, agent: np.ndarray, T, soft) -> tuple[np.ndarray, float]:
        """A point outside ``soft`` reached by backing away from the block (start of travel)."""
        pt = sg.Point(agent)
        if not soft.contains(pt):
            return agent, 0.0
        if self._prim is not None:
            d = -self._prim.n
        else:
            near = np.array(T.exterior.interpolate(T.exterior.project(pt)).coords[0])
            d = agent - near
            d = d / (np.linalg.norm(d) + 1e-9)
        for k in range(1, 30):
            q = agent + d * 3.0 * k
            if not soft.contains(sg.Point(q)):
                return q, 3.0 * k
        return agent, 0.0

    @staticmethod
    def _toward(a: np.ndarray, b: np.ndarray, step: float) -> np.ndarray:
        d = b - a
        n = float(np.linalg.norm(d))
        return b.copy() if n <= step else a + d * (step / n)

    @staticmethod
    def _clip(a: np.ndarray) -> np.ndarray:
        return np.clip(a, *WORKSPACE).astype(np.float64)


def _inside(p: np.ndarray, margin: float = 2.0) -> bool:
    lo, hi = WORKSPACE
    return bool(lo + margin <= p[0] <= hi - margin and lo + margin <= p[1] <= hi - margin)


def _entry(pre: np.ndarray, n: np.ndarray, soft, hard) -> np.ndarray | None:
    """The first point behind ``pre`` (along -n) outside ``soft`` whose approach is clear."""
    for s in range(8, 160, 6):
        e = pre - n * s
        if not soft.contains(sg.Point(e)):
            if sg.LineString([e, pre]).intersects(hard):
                return None
            return e
    return None


def _visibility(nodes: list[np.ndarray], obstacle) -> np.ndarray:
    m = len(nodes)
    g = np.full((m, m), np.inf)
    for i in range(m):
        for j in range(i + 1, m):
            if not sg.LineString([nodes[i], nodes[j]]).intersects(obstacle):
                g[i, j] = g[j, i] = float(np.linalg.norm(nodes[i] - nodes[j]))
    return g


def _shortest(a, b, nodes, graph, obstacle, rng, noise) -> list[np.ndarray] | None:
    """Shortest path a -> b around the obstacle (Dijkstra over a, nodes, b); edge lengths get
    random factors in [1, 1 + 2 noise] so near-equal detours are picked at random."""
    pts = [a, *nodes, b]
    m = len(pts)
    w = np.full((m, m), np.inf)
    w[1:-1, 1:-1] = graph
    for i in range(m):
        for k in (0, m - 1):
            if i != k and not np.isfinite(w[i, k]) and not sg.LineString([pts[i], pts[k]]).intersects(obstacle):
                w[i, k] = w[k, i] = float(np.linalg.norm(pts[i] - pts[k]))
    w = w * (1 + 2 * noise * rng.random((m, m)))
    dist = np.full(m, np.inf)
    prev = np.full(m, -1)
    dist[0] = 0
    done = np.zeros(m, bool)
    for _ in range(m):
        i = int(np.argmin(np.where(done, np.inf, dist)))
        if not np.isfinite(dist[i]):
            break
        done[i] = True
        nd = dist[i] + w[i]
        better = nd < dist
        dist[better], prev[better] = nd[better], i
    if not np.isfinite(dist[-1]):
        return None
    path, i = [], m - 1
    while i > 0:
        path.append(pts[i])
        i = prev[i]
    return path[::-1]


def _length(pts: list[np.ndarray]) -> float:
    return float(sum(np.linalg.norm(b - a) for a, b in itertools.pairwise(pts)))
