"""Streamroot / Mesh Delivery DNA data API v3."""
