"""StreamOne platform API version 3: HMAC-signed command/action requests, JSON envelope."""
