"""Reading: stats of a post, an artist and the site from the precomputed ``aggregates`` items.

``query`` validates the request, ``runner`` reads a target's closed Days (series chunks and
pieces, storage/aggregates/closed.py) and open Days (live ``D#`` items) and builds the answer,
``service`` decides who may read what, ``csv`` writes the daily series. Nothing here reads
raw events.
"""
