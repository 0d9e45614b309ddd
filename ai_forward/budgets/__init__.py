"""What requests cost (MODEL_PRICES) and per-user spending budgets."""
