"""Saved payment methods (cards now; bank accounts later)."""
