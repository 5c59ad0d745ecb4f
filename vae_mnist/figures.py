"""The figures that `vae-mnist plot` draws, and what each asks of the run's parts.

A figure needs capabilities, never a kind: the manifold walks a continuous posterior's space
with the prior's quantiles, the code grids flip a discrete posterior's variables, the coupling
figure draws a prior's learned structure. `plot all` draws every figure whose needs the run
meets; asking for one it does not meet is a one-line error naming the part that lacks it.
"""

from __future__ import annotations

from typing import Any

FIGURES = (
    "latent",
    "manifold",
    "decode",
    "reconstructions",
    "samples",
    "interpolation",
    "curves",
    "density",
    "animation",
    "codes",
    "usage",
    "coupling",
    "all",
)
# What each figure needs, as (part, capability, what that offers in words). The parts are
# those of `figure_parts`: the figures walk and draw the first layer's code against its own
# prior, and sample or draw the structure of the top one.
_CONTINUOUS = ("posterior", "continuous", "a continuous latent space")
_QUANTILES = ("code_prior", "quantiles", "a prior with quantiles to walk")
_CODES = ("posterior", "codes", "a code of discrete variables")
NEEDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "manifold": (_CONTINUOUS, _QUANTILES),
    "density": (_CONTINUOUS, ("code_prior", "isotropic_normal", "an N(0, I) prior to draw")),
    "animation": (_CONTINUOUS, _QUANTILES),
    "codes": (_CODES,),
    "usage": (_CODES,),
    "coupling": (("prior", "structure", "a learned prior structure"),),
    "samples": (("prior", "sample", "a prior to sample"),),
}


class ConditionalPrior:
    """The prior of a stack's first layer, p(z₁|z₂): a network of the layer above, with no
    quantiles to walk and no closed form to draw."""

    family = "prior"
    kind = "conditional p(z₁|z₂)"

    def offers(self, capability: str) -> bool:
        return False


def figure_parts(vae: Any) -> dict[str, Any]:
    """The parts the figures ask of a built model, by their role in `NEEDS`."""
    return parts_by_role(vae.posterior_part, vae.prior_part, stacked=bool(vae.upper_layers))


def parts_by_role(posterior: Any, prior: Any, stacked: bool) -> dict[str, Any]:
    """The first layer's posterior, the prior of its code (a stack's is conditional on the
    layer above), and the top prior, by their role in `NEEDS`."""
    code_prior = ConditionalPrior() if stacked else prior
    return {"posterior": posterior, "code_prior": code_prior, "prior": prior}


def unmet_need(figure: str, parts: dict[str, Any]) -> str | None:
    """Why the run cannot have `figure` (parts by role, `figure_parts`), or None where it can."""
    for role, capability, what in NEEDS.get(figure, ()):
        part = parts[role]
        if not part.offers(capability):
            return f"'{figure}' needs {what}, which this run's {part.kind} {part.family} is not"
    return None


# The figures drawn from the test set, which `--data` names (the others draw the model alone,
# or the run's history; `decode` reads it for `--index`, not for a code given with `--z` or
# `--code`).
TEST_SET_FIGURES = (
    "latent",
    "decode",
    "reconstructions",
    "interpolation",
    "density",
    "codes",
    "usage",
    "all",
)

# The figures that read the test set only where `--data` names it: the manifold and its
# animation walk a wide latent's two most active dimensions, measured there, and the first two
# without it (a figure of the model alone downloads no data set).
ACTIVITY_FIGURES = ("manifold", "animation")

# The figures that read each of plot's options, by the option's flag; `all` reads those of the
# figures it draws. An option given to a figure that does not read it is refused.
OPTION_FIGURES: dict[str, tuple[str, ...]] = {
    "--data": TEST_SET_FIGURES + ACTIVITY_FIGURES,
    "--n": ("manifold", "animation", "all"),
    "--index": ("decode", "codes", "all"),
    "--z": ("decode",),
    "--code": ("decode",),
    "--from": ("interpolation", "all"),
    "--to": ("interpolation", "all"),
    "--steps": ("interpolation", "all"),
    "--seed": ("samples", "all"),
}


def unread_option(figure: str, options: set[str]) -> str | None:
    """Why `figure` cannot take one of the given `options`, or None where it reads them all."""
    for option in sorted(options & set(OPTION_FIGURES)):
        if figure not in OPTION_FIGURES[option]:
            readers = ", ".join(name for name in OPTION_FIGURES[option] if name != "all")
            return f"{option} does not apply to '{figure}' (it is an option of {readers})"
    chosen = sorted(options & {"--index", "--z", "--code"})
    if figure == "decode" and len(chosen) > 1:
        return f"'decode' decodes one thing: give one of {', '.join(chosen)}"
    if figure == "decode" and "--data" in options and chosen and chosen[0] != "--index":
        return f"--data does not apply to 'decode' with {chosen[0]}, which decodes no test image"
    return None
