"""The route groups of the webhook app."""
