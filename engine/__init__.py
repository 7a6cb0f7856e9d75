"""moodcast engine: chat sources, normalisation, classification, aggregation, rules and storage.

The engine imports neither ``overlay`` nor ``bot``; they subscribe to its fan-out hubs.
"""
