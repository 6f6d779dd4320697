"""Near-line slow thinking: user events -> windows -> regenerated instructions (layer 4, no Ray)."""
