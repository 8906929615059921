"""Modeled energy: counters x a profile's unit energies, plus its power terms x latency.

    E = base_watts * latency + active_watts * latency + sum_c counters[c] * pj_per_count[c] * 1e-12

weight_bytes is charged at the profile's DRAM cost (weight_bytes_dram_pj) when the model's weights (the sum of
its layers' param_bytes) do not fit the profile's cache_bytes, else at its cache cost. `EnergyModel` binds a
profile to a model once, so the per-inference call the governor makes is a short dot product;
`modeled_energy` returns the per-term breakdown that shows where the energy goes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import planspec
from ..units import PICO, format_energy
from .profiles import Profile
from .sensor import ENERGY, MODELED, Probe, Sensor

BASE, ACTIVE = "base", "active"


def model_weight_bytes(model: Any) -> int:
    """Bytes of weights and biases of a loaded model (sum of LayerInfo.param_bytes)."""
    return int(sum(layer.param_bytes for layer in model.layers))


@dataclass(frozen=True)
class EnergyBreakdown:
    """Modeled energy of one inference, term by term (joules)."""
    profile: str
    profile_label: str
    fitted: bool
    latency_s: float
    terms_joules: dict[str, float] = field(default_factory=dict)  # 'base', 'active', then counters
    weights_in: str | None = None  # 'cache' or 'dram' when the profile distinguishes them

    @property
    def total_joules(self) -> float:
        return sum(self.terms_joules.values())

    @property
    def base_joules(self) -> float:
        return self.terms_joules.get(BASE, 0.0)

    @property
    def dynamic_joules(self) -> float:
        """What running the inference adds on top of what the device draws anyway."""
        return self.total_joules - self.base_joules

    def shares(self) -> dict[str, float]:
        tot = self.total_joules
        return {k: (v / tot if tot else 0.0) for k, v in self.terms_joules.items()}

    def label(self) -> str:
        return f"modeled ({self.profile_label})"

    def __str__(self) -> str:
        return f"{format_energy(self.total_joules)} per inference, {self.label()}"


class EnergyModel:
    """A profile bound to a model. `joules(totals, latency_s)` is cheap enough to call every inference."""

    def __init__(self, profile: Profile, model: Any = None, *, weight_bytes_total: int | None = None):
        self.profile = profile
        if weight_bytes_total is None and model is not None:
            weight_bytes_total = model_weight_bytes(model)
        self.model_weight_bytes = weight_bytes_total
        self._power_w = profile.base_watts + profile.active_watts
        coef = {c: profile.pj_per_count.get(c, 0.0) * PICO for c in planspec.COUNTERS}
        # The hot loop visits only counters that cost something.
        self._terms = {"cache": [(c, k) for c, k in coef.items() if k]}
        if profile.weight_bytes_dram_pj is not None and profile.cache_bytes is not None:
            coef["weight_bytes"] = profile.weight_bytes_dram_pj * PICO
            self._terms["dram"] = [(c, k) for c, k in coef.items() if k]
        self.weights_in = self._where(weight_bytes_total) if weight_bytes_total is not None else None

    def _where(self, weight_bytes: int) -> str | None:
        """'dram' or 'cache' for a weight footprint, None when the profile has one cost for both."""
        if "dram" not in self._terms:
            return None
        return "dram" if weight_bytes > self.profile.cache_bytes else "cache"

    def _where_for(self, totals: Mapping[str, int]) -> str | None:
        if self.model_weight_bytes is not None:
            return self.weights_in
        # No model given: judge by the weight bytes this inference fetched (with knobs off, the model's).
        return self._where(int(totals.get("weight_bytes", 0)))

    def joules(self, totals: Mapping[str, int], latency_s: float) -> float:
        """Total modeled joules of one inference from its counter totals and latency."""
        e = self._power_w * latency_s
        for c, k in self._terms[self._where_for(totals) or "cache"]:
            e += k * totals[c]
        return e

    def breakdown(self, totals: Mapping[str, int], latency_s: float) -> EnergyBreakdown:
        p = self.profile
        where = self._where_for(totals)
        terms = {BASE: p.base_watts * latency_s, ACTIVE: p.active_watts * latency_s}
        for c, k in self._terms[where or "cache"]:
            terms[c] = k * totals[c]
        return EnergyBreakdown(p.name, p.label(), p.fitted, latency_s, terms, where)


def modeled_energy(stats: Any, profile: Profile, model: Any = None, *,
                   latency_s: float | None = None) -> EnergyBreakdown:
    """Per-term modeled energy of one inference. `stats` is a RunStats (session.stats: .totals, .latency_s)
    or a counter dict (then pass latency_s)."""
    if isinstance(stats, Mapping):
        totals, lat = stats, (latency_s or 0.0)
    else:
        totals, lat = stats.totals, (stats.latency_s if latency_s is None else latency_s)
    return EnergyModel(profile, model).breakdown(totals, lat)


class ModeledSensor(Sensor):
    """The 'sensor' that always works: a cumulative energy counter fed by each inference's counters."""
    kind = MODELED
    quantity = ENERGY
    unit = "J (modeled)"
    refresh_interval_s = 0.0

    def __init__(self, profile: Profile, model: Any = None):
        self.profile = profile
        self.energy_model = EnergyModel(profile, model)
        self.name = f"model:{profile.name}"
        self.scope = profile.label()
        self.source = profile.path or profile.name
        self._joules = 0.0
        self.inferences = 0

    def record(self, stats: Any, latency_s: float | None = None) -> float:
        """Adds one inference (a RunStats, or a counter dict with latency_s); returns its joules."""
        if isinstance(stats, Mapping):
            e = self.energy_model.joules(stats, latency_s or 0.0)
        else:
            e = self.energy_model.joules(stats.totals, stats.latency_s if latency_s is None else latency_s)
        self._joules += e
        self.inferences += 1
        return e

    def read_joules(self) -> float:
        return self._joules

    def probe(self) -> Probe:
        return Probe(True, "always available: counters x profile, no measurement",
                     f"{format_energy(self._joules)} over {self.inferences} inferences")
