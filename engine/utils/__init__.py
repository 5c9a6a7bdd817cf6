"""Small helpers shared by every engine module."""
