"""Mechanisms shared by every API: configuration, time windows, HTTP, errors, warehouse writes, emulators."""
