"""Data layer: the item/row schema, validated JSONL io and batching into model inputs."""
