"""The checks of notebook 09, overfitting and the learning rate (being written)."""
