"""Next best actions, declared as data: what a rep can make happen, and its variant leads.

An action is one thing that could happen to a lead *now* (at its ``as_of``): for a model
trained on the contract's tables (the simulator or a ``tables`` dataset config), an
activity of a given type appended to the lead's log (a demo request, a pricing-page
visit, ...); for a model trained on a ``lead_snapshot`` dataset config, which has no
activity log, a change of one feature value (``set`` it to a value, or ``add`` a number
to it). ``ACTIONS`` declares the built-in ones with a plain phrase each; a dataset config
may declare its own (``actions:``, see ``features.dataset_config.schema.ActionConfig``).

``features.variants.activity_variants`` builds the leads these actions make (each lead
with one more activity at its ``as_of``) for the pipeline's own feature code. This module
imports only the catalogue, so the metadata of training sets and models can store
actions (``features.metadata.DatasetInfo.actions``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from features.catalogue import ACTIVITY_TYPES

ACTIVITY_ACTIONS: dict[str, str] = {
    "demo_request": "A demo request",
    "trial_signup": "A trial signup",
    "pricing_page_view": "A visit to the pricing page",
    "form_submit": "A web form submission",
    "webinar_attended": "Attending a webinar",
    "content_download": "A content download",
    "email_click": "A click in a marketing email",
}
"""The activities a rep can prompt (an invitation, a link, a trial offer), each with the
phrase a sentence starts with ("A demo request now would raise the score ..."). Passive
or negative activities (page and demo-page views, opens, bounces, unsubscribes) and steps
on the way to one listed (a webinar registration) are no actions: each action costs one
variant of every lead scored. The phrase of any other activity type a dataset config
names is made from its name."""


class ActionSpec(BaseModel):
    """One next best action, as stored with a model (``DatasetInfo.actions``).

    Exactly one kind: ``activity`` (append an activity of that type at ``as_of``; models
    that read an activity log), or ``feature`` with ``set`` or ``add`` (change that
    feature's value; ``lead_snapshot`` models).

    Attributes:
        name: Identifier returned as ``action`` (e.g. ``demo_request``).
        phrase: Noun phrase a sentence starts with ("A demo request").
        activity: Contract activity type to append.
        feature: Feature whose value changes.
        set: The value the feature is set to (text, number or true/false).
        add: The number added to the feature's value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    phrase: str
    activity: str | None = None
    feature: str | None = None
    set: str | float | bool | None = None
    add: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ActionSpec:
        """An action is an activity or one change of one feature, never both or neither."""
        if self.activity is not None:
            if self.activity not in ACTIVITY_TYPES:
                raise ValueError(f"action {self.name!r}: unknown activity type {self.activity!r}")
            if self.feature is not None or self.set is not None or self.add is not None:
                raise ValueError(f"action {self.name!r}: an activity action changes no feature")
        elif self.feature is None or (self.set is None) == (self.add is None):
            raise ValueError(
                f"action {self.name!r}: give `activity`, or `feature` with `set` or `add`"
            )
        return self


ACTIONS: tuple[ActionSpec, ...] = tuple(
    ActionSpec(name=activity, phrase=phrase, activity=activity)
    for activity, phrase in ACTIVITY_ACTIONS.items()
)
"""The built-in actions of a model trained on the contract's tables."""


def activity_action(
    activity: str, phrase: str | None = None, name: str | None = None
) -> ActionSpec:
    """The action "an activity of this type now", with the built-in phrase by default."""
    words = phrase or ACTIVITY_ACTIONS.get(activity) or f"A {activity.replace('_', ' ')}"
    return ActionSpec(name=name or activity, phrase=words, activity=activity)


def feature_action(
    feature: str,
    description: str,
    set_to: Any = None,
    add: float | None = None,
    phrase: str | None = None,
    name: str | None = None,
) -> ActionSpec:
    """The action "change this feature now"; the phrase says the change when none is given."""
    if add is not None:
        words = phrase or f"{description}: {add:+g}"
    else:
        words = phrase or f"{description} set to {set_to}"
    return ActionSpec(
        name=name or action_name(None, feature, set_to, add),
        phrase=words,
        feature=feature,
        set=set_to,
        add=add,
    )


def action_name(activity: str | None, feature: str | None, set_to: Any, add: Any) -> str:
    """The name of an action declared without one: its activity type, or the feature and
    its change (``total_visits_add_1``, ``last_activity_set_SMS Sent``)."""
    if activity is not None:
        return activity
    if add is not None:
        return f"{feature}_add_{float(add):g}" if isinstance(add, int | float) else f"{feature}_add"
    return f"{feature}_set_{set_to}"


def activity_codes(actions: tuple[ActionSpec, ...]) -> np.ndarray:
    """Index into ``ACTIVITY_TYPES`` of each (activity) action."""
    return np.asarray([ACTIVITY_TYPES.index(str(a.activity)) for a in actions], dtype=np.int64)
