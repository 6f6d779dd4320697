"""Need slots: a few of a list's k slots go to the open needs its reasoning instruction states.

A generated instruction names situational needs ("sunscreen, umbrella: summer in Wuhan"); the
generator reads each with the catalogue's vocabulary into a category and keeps, in the order of
their strength, those the user's history does not hold (`open_categories` in the stored record).
Guidance and training move the whole list towards such needs and give back interest hits at about
the rate they win need hits (docs/benchmarks.d/instructions.md, G-G5). A need slot is narrower: the
model's best item inside each of the first m open needs' categories (the same decode, its pool cut
to the category) takes one slot, and the items it pushes out are the model's lowest-ranked items
in categories the user has never touched (the model's guesses at the day's needs, which the
instruction now states). Items of the user's own categories are never pushed out: where the list
has no other, the need takes no slot.

    items = compose(base=[5, 9, 2, 7], needs=[11], known={"cat"}, category={5: "cat", 9: "toy", 2: "cat",
                    7: "toy", 11: "fan"}, k=4)      # -> [5, 9, 2, 11]: 7 ("toy", never touched) gives way

`compose` works on one request's ids; `Decoder.decode(..., needs=)` (oxygen.decoding.decode) runs the
constrained decodes and calls it, so serving, the offline recommender and the bench share it.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence

NEED_POOL_SEP = " :: "  # a need pool's name: "<scenario pool> :: <category>"


def need_pool(pool: str, category: str) -> str:
    """The decoder pool of `pool`'s items in `category` (the need slots decode there)."""
    return f"{pool}{NEED_POOL_SEP}{category}"


def compose(base: Sequence[int], needs: Sequence[int], known: Container[str], category: Mapping[int, str],
            k: int) -> list[int]:
    """One request's list of at most k ids: `base` (the model's list, best first, no -1) with the
    `needs` items (one per open need, in need order) appended. Room is made only by dropping base
    items whose category is not in `known` (the categories of the user's history), lowest-ranked
    first: a list made of the user's own categories keeps them, and the needs that find no room
    (the weakest first) take no slot. A need item already in the base list stays, moved among the
    need items, and takes no room."""
    extra = list(dict.fromkeys(needs))
    listed = set(base)
    keep = [i for i in base if i not in extra]
    over = len(keep) + len(extra) - k
    if over > 0:
        untouched = [p for p in reversed(range(len(keep))) if category.get(keep[p]) not in known]
        gone = set(untouched[:over])
        keep = [i for p, i in enumerate(keep) if p not in gone]
        room = k - len(keep) - sum(i in listed for i in extra)
        fits = []
        for i in extra:
            if i in listed or room > 0:
                fits.append(i)
                room -= i not in listed
        extra = fits
    return (keep + extra)[:k]
