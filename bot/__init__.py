"""moodcast bot: mood-aware replies, trending products, FAQ answers and the moderator queue."""
