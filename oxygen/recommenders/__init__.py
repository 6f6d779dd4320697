"""Every recommender evaluated offline, behind one interface (`base.Recommender`).

    base.py          the Recommender interface and its helpers (ItemIndex, top_k, mask_history)
    generative.py    `oxygen` / `tiger`: semantic-ID generation with the encoder-decoder
    pop.py           `pop`: most popular items
    markov.py        `markov`: item-to-item transitions
    sasrec.py        `sasrec`: SASRec (network in sasrec_model.py)
    registry.py      name -> factory, what `apps.bench quality --model NAME` builds

    from oxygen.recommenders.registry import build
    rec = build("sasrec").fit(train_rows, valid_rows, items)
"""
