"""Widgets of the ibtui app."""
