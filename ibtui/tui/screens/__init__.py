"""Screens of the ibtui app."""
