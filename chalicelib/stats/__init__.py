"""Reading: stats of a post, an artist and the site from the precomputed aggregates.

``query`` validates the request; ``runner`` spreads a Target's Days (read through the
``Aggregates`` facade, storage/aggregates/reading.py) over local dates, estimates distinct
Visitors (``sketches``) and builds the answer; ``service`` decides who may read what;
``csv`` writes the daily series. Nothing here knows the table's items or reads raw events.
"""
