"""The model registry and everything that turns registered weights into a network."""
