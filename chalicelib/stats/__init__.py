"""Reading: stats of a post, an artist and the site from the precomputed ``aggregates`` items.

``query`` validates the request, ``runner`` reads day items (and sketches only when a
range needs them) and builds the answer, ``service`` decides who may read what, ``csv``
writes the daily series. Nothing here reads raw events.
"""
