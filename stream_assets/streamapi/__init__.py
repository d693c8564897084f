"""StreamAPI HTTP API: signed requests (key, sig, rid), XML replies."""
