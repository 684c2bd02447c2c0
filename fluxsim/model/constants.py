"""Physical constants and the cathode material (SI units unless the name says otherwise).

Defaults follow docs/model.md section 5 for LiNi0.88Mn0.05Co0.07O2: molar mass from atomic weights, density from the
NMC811 lattice (Jousseaume et al., EES 2024).
"""

from __future__ import annotations

from fluxsim.model._pytree import pytree_dataclass
from fluxsim.model.catalogue import default

FARADAY_C_PER_MOL = 96485.33212
GAS_CONSTANT_J_PER_MOL_K = 8.314462618


@pytree_dataclass
class Material:
    """Bulk properties of the active material.

    Attributes:
        molar_mass_g_per_mol: formula-unit molar mass M [g mol-1] (default: the catalogue's, LiNi0.88Mn0.05Co0.07O2).
        density_kg_per_m3: crystallographic density rho [kg m-3] (default: the catalogue's).
    """

    molar_mass_g_per_mol: float = default("molar_mass_g_per_mol")
    density_kg_per_m3: float = default("density_kg_per_m3")

    @property
    def c_max_mol_per_m3(self):
        """Li site concentration at full lithiation, ``c_max = rho / M`` [mol m-3] (49,045 by default)."""
        return self.density_kg_per_m3 / (self.molar_mass_g_per_mol * 1e-3)

    @property
    def theoretical_capacity_mAh_per_g(self):
        """``Q_th = F / (3.6 M)`` [mAh g-1] (275.0 by default)."""
        return FARADAY_C_PER_MOL / (3.6 * self.molar_mass_g_per_mol)

    def mean_rate_per_s(self, rate_mA_per_g):
        """Rate of change of the mean occupancy [s-1] at a specific current [mA g-1]: ``I / (3600 Q_th)``."""
        return rate_mA_per_g / (3600.0 * self.theoretical_capacity_mAh_per_g)

    def surface_flux_m_per_s(self, rate_mA_per_g, radius_m):
        """Mean surface flux ``qbar = jbar / c_max`` [m s-1] of a disk of radius R at specific current I.

        Only the lateral surface is active and volume / area = R / 2, so ``i = I rho R / 2`` [A m-2] and
        ``qbar = i / (F c_max)``; then ``d(mean theta)/dt = 2 qbar / R = I / (3600 Q_th)``.
        """
        current_density = rate_mA_per_g * self.density_kg_per_m3 * radius_m / 2.0
        return current_density / (FARADAY_C_PER_MOL * self.c_max_mol_per_m3)
