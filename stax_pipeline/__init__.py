"""Stax pipeline."""
