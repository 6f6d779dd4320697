"""semantic_ids package."""
