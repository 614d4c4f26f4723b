"""Load harness: aiortc bots, Locust signaling users, and the scenarios that reproduce incidents."""
