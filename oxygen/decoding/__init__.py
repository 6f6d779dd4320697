"""Trie-constrained decoding of semantic-ID paths into items.

    decode.py       Decoder: THE decode path (beam search or sampling over named item pools, then the
                    optional re-rank mixture) used by the offline recommender, serving and the demo
    rerank.py       the two-expert mixture re-ranking (transition channel or the model's copy head)
    generate.py     generate_items(model, batch, tries, beam, k, pool_index=None, sampling=None): the engine's door
    beam_search.py  the batched engine: CSR gather of allowed (beam, child) edges, top-k per request
    sampling.py     SamplingParams and how candidates are picked (top-n or Gumbel-top-k sampling)
    trie_set.py     several PrefixTries (one per item pool) stacked into one tensor CSR index
    reference.py    slow pure-Python beam search / sampling, used by tests only
    protocol.py     StepModel / MixtureModel, the contract with the model (start / step / select / item_mixture)
"""
