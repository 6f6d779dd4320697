"""instructions package."""
