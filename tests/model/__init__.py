"""Tests of oxygen.model."""
