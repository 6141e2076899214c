"""Failure semantics, crash safety and security: nothing lost, nothing run twice, no way in."""
