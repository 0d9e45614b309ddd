"""Fallbacks: when a model fails, the next model of its chain answers, at any provider."""
