"""Every model with a `status` field that has choices says, in one TRANSITIONS map, where each status may go."""

import pytest
from django.apps import apps

PROJECT_APPS = {"accounts", "billing", "notifications"}


def _models_with_statuses():
    for model in apps.get_models():
        if model._meta.app_label not in PROJECT_APPS:
            continue
        try:
            field = model._meta.get_field("status")
        except Exception:  # noqa: BLE001 - FieldDoesNotExist
            continue
        if field.choices:
            yield model, {value for value, _label in field.flatchoices}


MODELS = sorted(_models_with_statuses(), key=lambda item: item[0]._meta.label)


def test_the_models_with_statuses_are_found():
    labels = {model._meta.label for model, _statuses in MODELS}
    assert {"billing.Bill", "billing.Payment", "billing.Refund", "billing.ImportBatch", "accounts.InvitationBatch",
            "notifications.Notification"} <= labels  # fmt: skip


@pytest.mark.parametrize(("model", "statuses"), MODELS, ids=[m._meta.label for m, _s in MODELS])
def test_transitions_cover_every_status(model, statuses):
    transitions = getattr(model, "TRANSITIONS", None)
    assert transitions is not None, f"{model._meta.label} has statuses but no TRANSITIONS map"
    assert set(transitions) == statuses, f"{model._meta.label}: every status needs an entry, even a final one"
    for source, targets in transitions.items():
        assert set(targets) <= statuses, f"{model._meta.label}: {source} leads to an unknown status"
        assert source not in targets, f"{model._meta.label}: {source} → {source} is not a move"
    assert callable(getattr(model, "can_transition_to", None))
