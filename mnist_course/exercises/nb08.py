"""The checks of notebook 08, training deep nets (being written)."""
