"""The one schema for items and interaction rows, shared by real data and the shop world.

Required fields are those of the Amazon'18 benchmark (`data/amazon18-office`): an item has an
integer `item_id` (text fields may be missing: ID-only datasets are valid), a row has `user_id`,
`history` (item ids, oldest first) and `target`. Every other field is optional and filled by
datasets that have it (the shop world fills all of them):

- row: `scenario`, `trigger` (item id), `query` (search text), `behaviour` of the target event,
  per-history-item `history_behaviours` / `history_scenarios` / `history_timestamps`,
  `timestamp` (unix seconds), `context` (city, date), `profile` (user profile),
  `truth` (hidden reason of the event: for evaluation only, never a model input).
- item: `title`, `description`, `brand`, `categories` (path, top level first), `price`,
  `popularity`, `tags`.

An `Impression` (shop world: impressions.jsonl) is one logged request: the list shown (item ids,
prices) and per shown item the outcome (`clicks` / `carts` / `purchases`, 0 or 1, nested: a purchase
implies a cart implies a click), with the request's scenario, trigger, query, time and split.

Models are pydantic v2 with `extra="forbid"` so a typo in a field name is an error, not a silently
ignored column.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oxygen.config.loading import Scenario

SCENARIOS: tuple[str, ...] = get_args(Scenario)
BEHAVIOURS: tuple[str, ...] = ("click", "cart", "purchase")
Behaviour = Literal["click", "cart", "purchase"]
Reason = Literal["interest", "context", "complement", "search", "channel", "popular"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(_Strict):
    """One catalogue item. Only `item_id` is required; text may be absent (ID-only data)."""

    item_id: int = Field(ge=0)
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    categories: list[str] = Field(default_factory=list)
    price: float | None = Field(default=None, ge=0)
    popularity: float | None = Field(default=None, ge=0)
    tags: list[str] = Field(default_factory=list)

    @field_validator("categories", mode="before")
    @classmethod
    def _category_path(cls, value: object) -> object:
        """Accept a path string ("A > B > C", "" for none) as well as a list."""
        if isinstance(value, str):
            return [p.strip() for p in value.split(">") if p.strip()]
        return value

    @property
    def text(self) -> str:
        """Title, brand and description joined; empty string when the item has no text."""
        parts = [self.title, self.brand, self.description]
        return ". ".join(p.strip() for p in parts if p and p.strip())


class Context(_Strict):
    """Where and when an event happened."""

    city: str | None = None
    date: str | None = None  # ISO date, YYYY-MM-DD


class Profile(_Strict):
    """What the platform knows about the user (all optional)."""

    age_band: str | None = None
    family_stage: str | None = None
    hobbies: list[str] = Field(default_factory=list)
    spending_power: str | None = None
    city: str | None = None
    persona: str | None = None


class Truth(_Strict):
    """Hidden reason of an event (shop world only). Evaluation reads it; models never do."""

    reason: Reason
    need: str | None = None  # the leaf category the user needed, when known


PER_HISTORY_FIELDS: tuple[str, ...] = ("history_behaviours", "history_scenarios", "history_timestamps")  # aligned with history


class Row(_Strict):
    """One training/eval example: a user's history and the next item they interacted with."""

    user_id: str = Field(min_length=1)
    history: list[int]
    target: int = Field(ge=0)
    scenario: Scenario | None = None
    trigger: int | None = Field(default=None, ge=0)
    query: str | None = None
    behaviour: Behaviour | None = None
    timestamp: int | None = None
    context: Context | None = None
    profile: Profile | None = None
    history_behaviours: list[Behaviour] | None = None
    history_scenarios: list[Scenario] | None = None
    history_timestamps: list[int] | None = None
    truth: Truth | None = None

    @model_validator(mode="after")
    def _aligned(self) -> "Row":
        """Per-history lists must have one entry per history item."""
        for name in PER_HISTORY_FIELDS:
            value = getattr(self, name)
            if value is not None and len(value) != len(self.history):
                raise ValueError(
                    f"{name} has {len(value)} entries but history has {len(self.history)}; "
                    f"give one entry per history item or omit {name}"
                )
        if any(i < 0 for i in self.history):
            raise ValueError("history holds a negative item id; item ids are integers >= 0")
        return self


class Impression(_Strict):
    """One logged request: the shown list and what the user did with each shown item."""

    request_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    split: Literal["train", "valid", "test"]
    scenario: Scenario
    timestamp: int
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    trigger: int | None = Field(default=None, ge=0)
    query: str | None = None
    items: list[int] = Field(min_length=1)
    prices: list[float]
    event_position: int | None = Field(default=None, ge=0)  # where the request's logged event item is
    clicks: list[Literal[0, 1]]
    carts: list[Literal[0, 1]]
    purchases: list[Literal[0, 1]]

    @model_validator(mode="after")
    def _consistent(self) -> "Impression":
        """Per-item lists aligned with `items`, distinct items, nested outcomes."""
        n = len(self.items)
        for name in ("prices", "clicks", "carts", "purchases"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries but items has {n}; "
                                 "give one entry per shown item")
        if len(set(self.items)) != n or min(self.items) < 0:
            raise ValueError("items must be distinct item ids >= 0 (an item is shown once per list)")
        if any(p > c for p, c in zip(self.purchases, self.carts)) or any(c > k for c, k in zip(self.carts, self.clicks)):
            raise ValueError("outcomes must be nested: a purchase needs a cart and a cart a click on the same item")
        if self.event_position is not None and self.event_position >= n:
            raise ValueError(f"event_position {self.event_position} is outside the list of {n} items")
        return self


BEHAVIOUR_WEIGHTS: dict[str, float] = {"click": 1.0, "cart": 2.0, "purchase": 3.0}
"""Default weights of the weighted next-token loss: purchase > cart > click (None counts as purchase
for purchase-only datasets such as Amazon reviews)."""
