"""Tests of oxygen.semantic_ids."""
