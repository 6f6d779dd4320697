"""Open needs (oxygen.instructions.needs): a need phrase read with the catalogue's vocabulary
(category names, usage in item texts, "for X" skipped, the longest known sub-phrase), a state's
history checked against it, and on a shop world the catalogue reads the world's own product nouns
as the world does (the vocabulary never reads the world's tables)."""

from __future__ import annotations

import pickle

from apps import world as world_app
from oxygen.data.io import load_dataset
from oxygen.instructions.needs import NeedVocabulary, open_categories, open_needs
from oxygen.instructions.pipeline import catalogue_vocabulary
from oxygen.world.knowledge import Knowledge
from tests.instructions.helpers import T, state

CATALOGUE = [
    ("Voltra smartphone 128GB. A fast mobile phone.", ["Electronics", "Phones", "Smartphones"]),
    ("Nexon mobile phone 64GB. Android handset.", ["Electronics", "Phones", "Smartphones"]),
    ("Nexon protective cover for smartphone. Shockproof shell.", ["Electronics", "Phones", "Phone Cases"]),
    ("Kip silicone case for smartphone. Protective cover.", ["Electronics", "Phones", "Phone Cases"]),
    ("Cozy baby sleepwear, cotton. Warm baby pajamas.", ["Baby", "Baby Clothing", "Baby Sleepwear"]),
    ("Unlabelled thing", []),
]


def test_a_phrase_names_the_category_whose_items_use_it():
    v = NeedVocabulary.from_items(CATALOGUE)
    assert v.category("protective cover") == "Phone Cases"
    assert v.category("smartphone") == "Smartphones"  # the cases' "for smartphone" does not count
    assert v.category("Smartphone") == v.category("smartphones") == "Smartphones"  # the category's own name
    assert v.category("phone case") == "Phone Cases"  # named, though no item text says it
    assert v.category("warm baby sleepwear for winter") == "Baby Sleepwear"  # its longest known sub-phrase
    assert v.category("dehumidifier") is None
    assert pickle.loads(pickle.dumps(v)).category("android handset") == "Smartphones"  # ships to Ray actors


def test_open_needs_counts_the_stated_needs_the_history_lacks():
    v = NeedVocabulary.from_items(CATALOGUE)
    empty = state([])
    bought_case = state([(T - 3600, "purchase", 2, "homepage")])  # helpers.ITEMS[2]: a Phone Cases item
    needs = ["protective cover", "baby pajamas", "dehumidifier"]
    assert open_needs(empty, needs, v) == 2  # the dehumidifier is not judged: no item uses the word
    assert open_needs(bought_case, needs, v) == 1
    assert open_needs(bought_case, ["silicone case"], v) == 0
    assert open_needs(empty, ["dehumidifier"], v) is None


def test_open_categories_keep_the_needs_order_without_repeats():
    v = NeedVocabulary.from_items(CATALOGUE)
    bought_case = state([(T - 3600, "purchase", 2, "homepage")])
    needs = ["baby pajamas", "dehumidifier", "protective cover", "warm baby sleepwear", "smartphone"]
    assert open_categories(state([]), needs, v) == ["Baby Sleepwear", "Phone Cases", "Smartphones"]
    assert open_categories(bought_case, needs, v) == ["Baby Sleepwear", "Smartphones"]
    assert open_categories(bought_case, ["silicone case"], v) == []
    assert open_categories(state([]), ["dehumidifier"], v) is None


def test_the_catalogue_reads_the_worlds_product_nouns_as_the_world_does(tmp_path):
    """On a shop world of 3,000 items, at least 95% of the world's product nouns (of leaves that
    have items) map to their own leaf (measured: 98%)."""
    world_app.main(["--out", str(tmp_path), "--items", "3000", "--users", "20", "--days", "10", "--seed", "1",
                    "--quiet"])
    ds, kb = load_dataset(tmp_path), Knowledge.load()
    v = catalogue_vocabulary(ds.items)
    present = {it.categories[-1] for it in ds.items}
    pairs = [(w, leaf) for leaf, words in zip(kb.leaves, kb.leaf_words) if leaf in present for w in words]
    right = sum(v.category(w) == leaf for w, leaf in pairs)
    assert right / len(pairs) >= 0.95, right / len(pairs)
