"""The checks of notebook 10, what the CNN looks at (being written)."""
