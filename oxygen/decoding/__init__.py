"""Trie-constrained decoding of semantic-ID paths into items.

    generate.py     generate_items(model, batch, tries, beam, k, pool_index=None, sampling=None): the front door
    beam_search.py  the batched engine: CSR gather of allowed (beam, child) edges, top-k per request
    sampling.py     SamplingParams and how candidates are picked (top-n or Gumbel-top-k sampling)
    trie_set.py     several PrefixTries (one per item pool) stacked into one tensor CSR index
    reference.py    slow pure-Python beam search / sampling, used by tests only
    protocol.py     StepModel, the contract with the model (start / step / select)
"""
