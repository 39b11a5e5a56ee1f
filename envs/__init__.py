"""Environments for rl-adaloss, registered with gymnasium on import."""
