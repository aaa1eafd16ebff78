"""What a shared component's new version means for one model built on it: adopt, keep, or retrain on top.

Two measurements on the model's own labeled window come in (see
``controller.reactors.components``):

- the model's metric with the component version in use and with the new version, the model
  unchanged (does the new version serve the model as it is?);
- a linear probe's cross-validated metric on each version's embeddings alone (does the new
  version carry as much of what this model predicts, if the model were refitted on it?).

The rule: **adopt** when the model unchanged loses at most ``tolerance`` with the new version;
otherwise **retrain on top** when the new embeddings predict the label at least as well as the
old ones (within ``tolerance``): the model only needs refitting to read them; otherwise **keep**
the version in use, since the new one carries less of what this model needs. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ComponentAction(StrEnum):
    ADOPT = "adopt"
    KEEP = "keep"
    RETRAIN_ON_TOP = "retrain_on_top"


@dataclass(frozen=True)
class ComponentVerdict:
    action: ComponentAction
    summary: str


def component_verdict(
    component: str,
    in_use: str,
    candidate: str,
    metric: str,
    model_in_use: float,
    model_candidate: float | None,
    probe_in_use: float | None,
    probe_candidate: float | None,
    *,
    higher_is_better: bool,
    tolerance: float,
) -> ComponentVerdict:
    """The verdict and one sentence for the owner. ``model_candidate`` is None when the model
    cannot read the new version's output (another dimension); a probe is None when the window has
    too few labeled rows for one.

    >>> v = component_verdict("enc", "1", "2", "accuracy", 0.84, 0.85, 0.83, 0.84, higher_is_better=True,
    ...                       tolerance=0.005)
    >>> v.action.value, v.summary
    ('adopt', 'enc v2 serves this model as it is: accuracy 0.840 -> 0.850 on its window; adopt v2')
    >>> component_verdict("enc", "1", "2", "accuracy", 0.84, 0.52, 0.83, 0.84, higher_is_better=True,
    ...                   tolerance=0.005).action.value
    'retrain_on_top'
    >>> component_verdict("enc", "1", "2", "mae", 1.0, 2.0, 1.1, 1.6, higher_is_better=False,
    ...                   tolerance=0.005).action.value
    'keep'
    """
    sign = 1.0 if higher_is_better else -1.0

    def fmt(value: float | None) -> str:
        return "unreadable" if value is None else f"{value:.3f}"

    if model_candidate is not None and sign * (model_candidate - model_in_use) >= -tolerance:
        return ComponentVerdict(
            ComponentAction.ADOPT,
            f"{component} v{candidate} serves this model as it is: {metric} {fmt(model_in_use)} -> "
            f"{fmt(model_candidate)} on its window; adopt v{candidate}",
        )
    change = f"{metric} {fmt(model_in_use)} -> {fmt(model_candidate)} with the model as trained"
    probes = f"a linear probe on its embeddings {fmt(probe_in_use)} -> {fmt(probe_candidate)}"
    probed = probe_in_use is not None and probe_candidate is not None
    if probed and sign * (probe_candidate - probe_in_use) >= -tolerance:  # type: ignore[operator]
        return ComponentVerdict(
            ComponentAction.RETRAIN_ON_TOP,
            f"{component} v{candidate} changes what this model reads ({change}) but carries as much of its "
            f"target ({probes}): retrain this model on top of v{candidate}",
        )
    return ComponentVerdict(
        ComponentAction.KEEP,
        f"{component} v{candidate} would cost this model ({change}; {probes}): keep v{in_use}",
    )
