"""The registry of posts and players: who owns what, and what may be counted."""
