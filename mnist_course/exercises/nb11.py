"""The checks of notebook 11, trusting the confidence (being written)."""
